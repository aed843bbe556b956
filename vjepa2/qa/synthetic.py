"""A synthetic video question-answering benchmark built from the synthetic world (:mod:`vjepa2.data.synthetic`).

Every question is asked about one clip (a world seed) and its answer is read off the simulated scene, so it is
known exactly. Six question types:

======================  ==============================================  ==========================================
type                    question                                        answers
======================  ==============================================  ==========================================
``direction``           which way does the red disc move at the start   8 compass words (north = up on screen)
``count``               how many objects are there                      one, two, three (the world's range)
``colour``              what colour is the object that moves            6 colours (one-mover scenes only)
``shape``               what shape is the blue object                   disc, square
``collision``           do any objects collide                          yes, no (within the clip)
``next_event``          what happens next to the red disc               nothing, it hits a wall, it hits an object
======================  ==============================================  ==========================================

Each question comes in two formats: ``mc`` (the prompt lists ``mc_options`` choices, the answer among them) and
``open`` (short answer). Answers are **balanced per type** (every answer of a type occurs equally often; surplus
questions are dropped in seed order), so the question text alone predicts nothing beyond chance: a blind model
stays at ``1 / len(options)`` (mc) or ``1 / len(answers)`` (open). Splits use the world's disjoint seed ranges
(:func:`vjepa2.data.synthetic.split_seeds`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vjepa2.data.synthetic import COLOURS, NEXT_EVENTS, SHAPES, Scene, SyntheticWorld, WorldConfig, split_seeds
from vjepa2.errors import UserError

QUESTION_TYPES = ("direction", "count", "colour", "shape", "collision", "next_event")
DIRECTIONS = ("east", "northeast", "north", "northwest", "west", "southwest", "south", "southeast")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")
EVENTS = {"none": "nothing", "bounce_wall": "it hits a wall", "collide": "it hits an object"}
TEMPLATES = {
    "direction": "which way does the {object} move at the start ?",
    "count": "how many objects are there ?",
    "colour": "what colour is the object that moves ?",
    "shape": "what shape is the {colour} object ?",
    "collision": "do any objects collide ?",
    "next_event": "what happens next to the {object} ?",
}
MC_GLUE = "options :"  # the multiple-choice prompt: "<question> options : a , b , c , d"
Format = Literal["mc", "open"]


@dataclass(frozen=True)
class QAItem:
    """One question about the clip of world seed ``seed``; ``options`` is empty for the open format."""

    seed: int
    qtype: str
    format: Format
    question: str
    answer: str
    options: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        """The text the language model reads after the visual tokens."""
        if self.format == "open":
            return self.question
        return f"{self.question} {MC_GLUE} " + " , ".join(self.options)


@dataclass(frozen=True)
class QASet:
    """Questions about the clips ``seeds`` (every seed rendered once; items refer to clips by seed)."""

    split: str
    seeds: tuple[int, ...]
    items: tuple[QAItem, ...]
    world: WorldConfig

    def by_type(self) -> dict[str, list[QAItem]]:
        groups: dict[str, list[QAItem]] = defaultdict(list)
        for item in self.items:
            groups[item.qtype].append(item)
        return dict(groups)


def answer_set(qtype: str, world: WorldConfig) -> tuple[str, ...]:
    """Every possible answer of a question type in this world (the classes that are balanced)."""
    if qtype == "direction":
        if world.num_directions != len(DIRECTIONS):
            raise UserError(
                f"the QA benchmark names {len(DIRECTIONS)} directions; world.num_directions is {world.num_directions}"
            )
        return DIRECTIONS
    if qtype == "count":
        return NUMBERS[world.min_objects : world.max_objects + 1]
    if qtype == "colour":
        return tuple(COLOURS)
    if qtype == "shape":
        return SHAPES
    if qtype == "collision":
        return ("yes", "no")
    if qtype == "next_event":
        return tuple(EVENTS[e] for e in NEXT_EVENTS)
    raise UserError(f"unknown question type {qtype!r}; choose from {list(QUESTION_TYPES)}")


def _describe(scene: Scene, k: int) -> str:
    return f"{list(COLOURS)[scene.colour[k]]} {SHAPES[scene.shape[k]]}"


def ask(scene: Scene, qtype: str, frames: int) -> tuple[str, str] | None:
    """``(question, answer)`` of type ``qtype`` about ``scene``, or None where the type does not apply.

    ``frames`` is the clip length (collisions after it are not in the clip).
    """
    labels = scene.labels
    if qtype == "direction":
        return TEMPLATES[qtype].format(object=_describe(scene, 0)), DIRECTIONS[labels["direction"]]
    if qtype == "count":
        return TEMPLATES[qtype], NUMBERS[labels["count"]]
    if qtype == "colour":
        if not labels["one_mover"]:
            return None
        return TEMPLATES[qtype], list(COLOURS)[labels["colour"]]
    if qtype == "shape":
        k = int(np.random.default_rng([scene.seed, 7]).integers(len(scene.colour)))  # which object is asked about
        return TEMPLATES[qtype].format(colour=list(COLOURS)[scene.colour[k]]), SHAPES[scene.shape[k]]
    if qtype == "collision":
        return TEMPLATES[qtype], "yes" if bool(scene.collisions[:frames].any()) else "no"
    if qtype == "next_event":
        return TEMPLATES[qtype].format(object=_describe(scene, 0)), EVENTS[NEXT_EVENTS[labels["next_event"]]]
    raise UserError(f"unknown question type {qtype!r}; choose from {list(QUESTION_TYPES)}")


def _options(answer: str, answers: tuple[str, ...], n: int, rng: np.random.Generator) -> tuple[str, ...]:
    """``min(n, len(answers))`` choices: the answer plus uniformly drawn distractors, in random order."""
    others = [a for a in answers if a != answer]
    picked = [others[i] for i in rng.choice(len(others), size=min(n, len(answers)) - 1, replace=False)]
    order = rng.permutation(len(picked) + 1)
    return tuple(([answer, *picked])[i] for i in order)


def balance(candidates: list[tuple[int, str, str]], answers: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Keep the first ``k`` ``(seed, question, answer)`` per answer, ``k`` = the rarest answer's count."""
    groups: dict[str, list[tuple[int, str, str]]] = {a: [] for a in answers}
    for cand in candidates:
        groups[cand[2]].append(cand)
    k = min(len(g) for g in groups.values())
    kept = {id(c) for g in groups.values() for c in g[:k]}
    return [c for c in candidates if id(c) in kept]


def build_qa_set(
    split: str,
    clips: int,
    world: WorldConfig | None = None,
    types: tuple[str, ...] = QUESTION_TYPES,
    mc_options: int = 4,
    formats: tuple[Format, ...] = ("mc", "open"),
) -> QASet:
    """Questions about the first ``clips`` seeds of ``split``, balanced per type, in every format of ``formats``.

    Args:
        split: ``train``, ``val`` or ``test`` (disjoint seed ranges).
        clips: clips simulated; each type keeps as many questions as balance allows (fewer for rare answers).
        world: the world (``frames`` is the clip length the questions are about).
        types: question types, a subset of :data:`QUESTION_TYPES`.
        mc_options: choices in a multiple-choice prompt (at most the type's answer count).
    """
    world = world or WorldConfig()
    if mc_options < 2:
        raise UserError(f"mc_options must be >= 2, got {mc_options}")
    bad = [f for f in formats if f not in ("mc", "open")]
    if bad or not formats:
        raise UserError(f"formats must be a non-empty subset of ['mc', 'open'], got {list(formats)}")
    sim = SyntheticWorld(world)
    seeds = tuple(split_seeds(split, clips))
    scenes = [sim.scene(s) for s in seeds]
    items: list[QAItem] = []
    for ti, qtype in enumerate(types):
        answers = answer_set(qtype, world)
        found = [(sc.seed, *qa) for sc in scenes if (qa := ask(sc, qtype, world.frames)) is not None]
        for seed, question, answer in balance(found, answers):
            rng = np.random.default_rng([seed, ti, 1])
            for fmt in formats:
                opts = _options(answer, answers, mc_options, rng) if fmt == "mc" else ()
                items.append(QAItem(seed, qtype, fmt, question, answer, opts))
    used = sorted({item.seed for item in items})
    return QASet(split, tuple(used), tuple(items), world)


def vocabulary(world: WorldConfig | None = None) -> list[str]:
    """Every word a question, prompt or answer of this benchmark can contain (sorted; lower case)."""
    world = world or WorldConfig()
    text = [MC_GLUE, ","]
    text += [t.format(object="", colour="") for t in TEMPLATES.values()]
    text += list(COLOURS) + list(SHAPES) + list(NUMBERS)
    for qtype in QUESTION_TYPES:
        text += list(answer_set(qtype, world))
    return sorted({w for line in text for w in line.lower().split()})
