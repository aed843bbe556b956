"""Action anticipation with the frozen encoder and the pretrained predictor (official
``evals/action_anticipation_frozen``, EK100).

The encoder sees the observed (context) clip; the mask-denoising predictor fills the token slot that starts
``anticipation_frames`` after the context ends (official: ``N + grid^2 * int(anticipation_time * fps / tubelet)``),
and its predicted tokens join the context tokens as the input of an attentive probe with one query per task (verb,
noun, action). Loss: sigmoid focal loss (alpha 0.25, gamma 2, summed) added over the three; metric: class-mean
recall@5 on the sigmoid scores. The baseline is the same probe on the context tokens alone.

On the synthetic world (one moving object among static ones), the "action" is what happens next to the moving
object, read off the simulation: verb = its first event after the context, up to the end of the anticipated slot
(none, a bounce off the left / right / top / bottom wall, a collision: 6 classes), noun = its appearance (shape x
colour: 12), action = the (verb, noun) pair (72). The verb is predictable from the motion in the context only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.data.synthetic import COLOURS, SHAPES, Scene, SyntheticWorld, WorldConfig, split_seeds, to_model_layout
from vjepa2.eval.probe import ProbeConfig, build_probe, predict, train_grid

TASKS = ("verb", "noun", "action")
VERBS = ("none", "bounce_left", "bounce_right", "bounce_top", "bounce_bottom", "collide")
NUM_NOUNS = len(SHAPES) * len(COLOURS)  # the main object's appearance


@dataclass(frozen=True)
class AnticipationConfig:
    """The synthetic anticipation task and its probe."""

    context_frames: int = 4  # observed frames (context slots = context_frames / tubelet)
    anticipation_frames: int = 2  # frames from the end of the context to the anticipated slot
    resolution: int = 64
    mask_index: int = 1  # predictor mask token (official inference default)
    probe: ProbeConfig = field(default_factory=lambda: ProbeConfig(depth=2, epochs=20))

    @property
    def num_classes(self) -> tuple[int, int, int]:
        return len(VERBS), NUM_NOUNS, len(VERBS) * NUM_NOUNS


def target_ids(context_frames: int, anticipation_frames: int, tubelet: int, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Token indices ``[H * W]`` of the anticipated slot: the first tubelet at or after ``context + anticipation``."""
    slot = context_frames // tubelet + anticipation_frames // tubelet
    h, w = grid_hw
    return slot * h * w + torch.arange(h * w)


@torch.inference_mode()
def anticipation_features(
    encoder: nn.Module,
    predictor: nn.Module,
    clips: torch.Tensor,
    anticipation_frames: int,
    mask_index: int = 1,
    dtype: str = "bf16",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context tokens ``[B, Nc, D]`` of clips ``[B, 3, Tc, H, W]`` and predicted tokens ``[B, H'W', D]`` of the slot
    ``anticipation_frames`` after the context (float32, CPU)."""
    device = next(encoder.parameters()).device
    clips = clips.to(device)
    T, H, W = encoder.grid(clips)
    p = predictor.cfg.patch_size
    hw = (clips.shape[-2] // p, clips.shape[-1] // p)
    ctx_ids = torch.arange(T * H * W, device=device).expand(len(clips), -1)
    tgt = target_ids(clips.shape[2], anticipation_frames, encoder.cfg.tubelet_size, hw).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        ctx = encoder(clips)
        pred = predictor(ctx, ctx_ids, tgt.expand(len(clips), -1), mask_index=mask_index, grid_hw=hw)
    return ctx.float().cpu(), pred.float().cpu()


def sigmoid_focal_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    """Summed sigmoid focal loss (Lin et al.; torchvision's ``sigmoid_focal_loss``) of ``[B, C]`` logits against
    integer labels ``[B]`` (one-hot targets). ``gamma=0, alpha<0`` is the summed binary cross-entropy."""
    targets = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum()


def multitask_focal_loss(outputs: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Focal losses of each head ``outputs[i] [B, C_i]`` against ``labels[:, i]``, added (official EK100)."""
    return sum(sigmoid_focal_loss(o, labels[:, i]) for i, o in enumerate(outputs))


def class_mean_recall(scores: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Mean over the classes present in ``labels [N]`` of the share of their videos with the class in the top-k."""
    hit = (scores.topk(min(k, scores.shape[-1]), dim=-1).indices == labels[:, None]).any(-1).float()
    classes = labels.unique()
    return torch.stack([hit[labels == c].mean() for c in classes]).mean().item()


def prior_bias(probe: nn.Module) -> nn.Module:
    """Start each head's sigmoid at the uniform prior ``1 / C`` (bias ``-log(C - 1)``, RetinaNet's focal-loss init):
    otherwise the first steps spend the shared pooler on pushing every logit down, and small data sets never
    recover from it (a departure from the official probe, which starts at 0.5)."""
    for head in probe.heads:
        nn.init.constant_(head.bias, -math.log(max(head.out_features - 1, 1)))
    return probe


@dataclass
class AnticipationResult:
    recall: dict[str, float]  # class-mean recall@5 per task of the best head
    head: tuple[float, float]  # its (lr, weight decay)
    model: nn.Module


def train_anticipation(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: tuple[int, ...],
    cfg: ProbeConfig,
    progress: bool = False,
) -> AnticipationResult:
    """Train the verb/noun/action probe grid on tokens ``[N, tokens, D]`` and labels ``[N, 3]``; the best head by
    mean recall@5 over the tasks."""
    build = lambda: prior_bias(build_probe(train_feats.shape[-1], tuple(num_classes), cfg))  # noqa: E731
    probes = train_grid(build, multitask_focal_loss, train_feats, train_labels, cfg, progress, "anticipation probes")
    recalls = []
    for probe in probes:
        scores = predict(probe, test_feats, activation="sigmoid")
        recalls.append(
            {t: class_mean_recall(s, test_labels[:, i]) for i, (t, s) in enumerate(zip(TASKS, scores, strict=True))}
        )
    best = max(range(len(probes)), key=lambda i: sum(recalls[i].values()))
    return AnticipationResult(recalls[best], cfg.grid[best], probes[best])


def synthetic_labels(scene: Scene, cfg: AnticipationConfig, tubelet: int = 2) -> tuple[int, int, int]:
    """(verb, noun, action) of a scene: the main object's first event after the context, up to the end of the
    anticipated slot, and the object's appearance."""
    start, stop = cfg.context_frames, cfg.context_frames + cfg.anticipation_frames + tubelet
    verb = 0
    for s in range(start, min(stop, len(scene.positions))):
        if scene.collisions[s, 0]:
            verb = VERBS.index("collide")
        elif scene.wall_hits[s, 0]:
            x, y = scene.positions[s, 0]
            r, size = scene.radius[0], cfg.resolution
            verb = 1 + int(np.argmin([x - r, size - r - x, y - r, size - r - y]))  # the nearest wall
        if verb:
            break
    noun = int(scene.labels["appearance"])
    return verb, noun, verb * NUM_NOUNS + noun


def synthetic_anticipation(split: str, n: int, cfg: AnticipationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Context clips ``[n, 3, Tc, r, r]`` (normalised) of a synthetic split, and their labels ``[n, 3]``."""
    horizon = cfg.anticipation_frames + 2  # up to the end of the anticipated slot
    world = SyntheticWorld(
        WorldConfig(resolution=cfg.resolution, frames=cfg.context_frames, one_mover_prob=1.0, event_horizon=horizon)
    )
    scenes = [world.scene(s) for s in split_seeds(split, n)]
    clips = torch.stack([to_model_layout(world.render(s)) for s in scenes])
    labels = torch.tensor([synthetic_labels(s, cfg) for s in scenes])
    return clips, labels


def encode_anticipation(
    encoder: nn.Module, predictor: nn.Module, clips: torch.Tensor, cfg: AnticipationConfig, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe inputs of both variants: context only ``[N, Nc, D]`` and context + predicted ``[N, Nc + H'W', D]``."""
    parts = [
        anticipation_features(encoder, predictor, clips[i : i + batch_size], cfg.anticipation_frames, cfg.mask_index)
        for i in range(0, len(clips), batch_size)
    ]
    ctx = torch.cat([c for c, _ in parts])
    pred = torch.cat([p for _, p in parts])
    return ctx, torch.cat([ctx, pred], dim=1)
