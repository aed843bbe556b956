"""Epic-Kitchens-100 action anticipation: the annotation CSVs, the anticipation clips, the probe run.

The annotation files (``EPIC_100_train.csv``, ``EPIC_100_validation.csv``) have one action segment per row with the
columns ``narration_id, participant_id, video_id, narration_timestamp, start_timestamp, stop_timestamp,
start_frame, stop_frame, narration, verb, verb_class, noun, noun_class, all_nouns, all_noun_classes``; this module
reads ``participant_id``, ``video_id``, ``start_frame``/``start_timestamp``, ``verb_class`` and ``noun_class``.

As the official ``evals/action_anticipation_frozen`` (EK100 configs): the observed clip is ``frames`` = 32 frames at
8 fps (every ``int(video_fps / 8)``-th frame) ending ``anticipation`` = 1 s before the action starts (indices before
the video start repeat frame 0); classes are those of the training file (validation actions whose (verb, noun)
pair never occurs in training are dropped), verb, noun and action = (verb, noun) pair; the metric is class-mean
recall@5. Videos are found at ``ROOT/<participant_id>/videos/<video_id>.MP4`` (official ``file_format: 0``) or
``ROOT/<participant_id>/<video_id>.MP4`` (``1``). One departure: the official loader anchors the clip at
``int(ap * start + (1 - ap) * stop) - anticipation``, i.e. at the action's *stop* frame for the evaluation's
``ap = 0``; here the clip ends ``anticipation`` before the action's *start*, the standard EK100 protocol.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.video import VideoReadError
from vjepa2.errors import UserError
from vjepa2.eval.cache import cache_key

COLUMNS = (
    "narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
    "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
    "all_noun_classes",
)  # fmt: skip
REQUIRED = ("participant_id", "video_id", "start_timestamp", "start_frame", "verb_class", "noun_class")


@dataclass(frozen=True)
class Action:
    """One annotated action segment."""

    narration_id: str
    participant_id: str
    video_id: str
    start_s: float  # start_timestamp in seconds
    start_frame: int
    stop_frame: int
    verb_class: int
    noun_class: int


def parse_timestamp(text: str) -> float:
    """``"HH:MM:SS.ff"`` (EK100) -> seconds. ValueError if malformed."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.ff")
    h, m, s = parts
    return int(h) * 3600 + int(m) * 60 + float(s)


def read_annotations(path: str | Path) -> list[Action]:
    """The rows of an EK100 annotation CSV; UserError naming the file, row and column of any bad value."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EK100 annotation file not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing}; an EK100 annotation CSV has columns {COLUMNS}")
        actions = []
        for row_no, row in enumerate(reader, start=2):
            col = ""
            try:
                col = "start_timestamp"
                start_s = parse_timestamp(row[col])
                values = {}
                for col in ("start_frame", "stop_frame", "verb_class", "noun_class"):
                    raw = row.get(col)
                    values[col] = -1 if raw in (None, "") and col == "stop_frame" else int(raw)
                    if col != "stop_frame" and values[col] < 0:
                        raise ValueError("negative")
            except (ValueError, TypeError) as err:
                raise UserError(f"{path}, line {row_no}, column {col}: bad value {row.get(col)!r} ({err})") from err
            for col in ("participant_id", "video_id"):
                if not row[col]:
                    raise UserError(f"{path}, line {row_no}, column {col}: empty")
            actions.append(
                Action(
                    row.get("narration_id") or f"{row['video_id']}_{row_no}",
                    row["participant_id"],
                    row["video_id"],
                    start_s,
                    **values,
                )  # fmt: skip
            )
    if not actions:
        raise UserError(f"{path}: no annotated actions")
    return actions


@dataclass(frozen=True)
class Classes:
    """Verb, noun and action classes of a training file: original class ids -> contiguous indices (sorted)."""

    verbs: dict[int, int]
    nouns: dict[int, int]
    actions: dict[tuple[int, int], int]

    @classmethod
    def from_actions(cls, actions: list[Action]) -> Classes:
        pairs = sorted({(a.verb_class, a.noun_class) for a in actions})
        verbs = sorted({v for v, _ in pairs})
        nouns = sorted({n for _, n in pairs})
        index = lambda xs: {x: i for i, x in enumerate(xs)}  # noqa: E731
        return cls(index(verbs), index(nouns), index(pairs))

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.verbs), len(self.nouns), len(self.actions)

    def labels(self, a: Action) -> tuple[int, int, int] | None:
        """(verb, noun, action) indices, or None when the action's (verb, noun) pair is not a training action."""
        pair = (a.verb_class, a.noun_class)
        if pair not in self.actions:
            return None
        return self.verbs[a.verb_class], self.nouns[a.noun_class], self.actions[pair]


def video_path(root: str | Path, participant: str, video: str, layout: int = 0) -> Path:
    """``root/<pid>/videos/<vid>.MP4`` (layout 0, official ``file_format: 0``) or ``root/<pid>/<vid>.MP4`` (1)."""
    if layout not in (0, 1):
        raise UserError(f"EK100 video layout must be 0 (<pid>/videos/<vid>.MP4) or 1 (<pid>/<vid>.MP4), got {layout}")
    root = Path(root)
    return root / participant / "videos" / f"{video}.MP4" if layout == 0 else root / participant / f"{video}.MP4"


def anticipation_indices(
    start_frame: int, video_fps: float, frames: int = 32, fps: float = 8.0, anticipation: float = 1.0
) -> np.ndarray:
    """Frame indices ``[frames]`` of the observed clip: every ``int(video_fps / fps)``-th frame, the last one
    before ``start_frame - int(anticipation * video_fps)``; negative indices become 0 (official padding)."""
    step = max(int(video_fps / fps), 1)
    end = int(start_frame - anticipation * video_fps)
    idx = np.arange(end - frames * step, end, step, dtype=np.int64)
    return np.clip(idx, 0, None)


class EK100Source:
    """Anticipation clips of an EK100 annotation file: labels ``[N, 3]`` (verb, noun, action) and item ``i`` as
    uint8 ``[1, T, H, W, 3]``.

    ``classes``: the training file's classes (val rows outside them are dropped); None builds them from this file.
    Rows whose video file is missing are dropped (as official), with the count in ``missing``.
    """

    def __init__(
        self,
        annotations: str | Path,
        root: str | Path,
        classes: Classes | None = None,
        layout: int = 0,
        anticipation: float = 1.0,
    ) -> None:
        actions = read_annotations(annotations)
        self.class_map = classes or Classes.from_actions(actions)
        self.anticipation = anticipation
        kept, labels, self.missing = [], [], 0
        for a in actions:
            lab = self.class_map.labels(a)
            if lab is None:
                continue
            if not video_path(root, a.participant_id, a.video_id, layout).is_file():
                self.missing += 1
                continue
            kept.append(a)
            labels.append(lab)
        if not kept:
            raise UserError(
                f"{annotations}: no action with a video under {root} (expected "
                f"{video_path(root, '<participant_id>', '<video_id>', layout)})"
            )
        self.actions, self.root, self.layout = kept, Path(root), layout
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.classes = [str(i) for i in range(self.class_map.sizes[2])]
        self.name = f"ek100:{annotations}:{cache_key(ids=[a.narration_id for a in kept], at=anticipation)}"

    def __len__(self) -> int:
        return len(self.actions)

    def segments(self, i: int, spec) -> torch.Tensor:
        """uint8 ``[1, T, H, W, 3]``: ``spec.frames`` frames at ``spec.fps`` ending ``anticipation`` s before the
        action (``spec.frame_step``, when set, replaces ``video_fps / fps``)."""
        from vjepa2.data import video

        a = self.actions[i]
        path = video_path(self.root, a.participant_id, a.video_id, self.layout)
        try:
            n, vfps = video._probe(path)
            fps = vfps / spec.frame_step if spec.frame_step else (spec.fps or 8.0)
            idx = np.clip(anticipation_indices(a.start_frame, vfps, spec.frames, fps, self.anticipation), 0, n - 1)
            clip, _ = video._decode(path, idx)
        except (video.av.FFmpegError, OSError) as e:
            raise VideoReadError(path, f"{e} (corrupt, truncated or not a video?)") from e
        if clip is None:
            raise VideoReadError(path, f"frames {idx.min()}-{idx.max()} could not be decoded")
        return torch.from_numpy(clip).unsqueeze(0)
