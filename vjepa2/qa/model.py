"""Encoder tokens -> pooling -> projector -> a causal language model, with the visual tokens before the text.

The paper's video-QA design: the frozen V-JEPA 2 encoder's tokens ``[B, N, D]`` are (optionally) pooled to
``V`` tokens (an attentive pooler with ``V`` learned queries, or average pooling over a spatial grid per time
step), mapped by an MLP projector into the LM's input-embedding space ``[B, V, H]`` and placed before the
embedded question tokens; the LM (any ``transformers`` ``AutoModelForCausalLM``) runs on ``inputs_embeds``.
Without a projector (``video=False``) the same LM reads the text alone: the blind baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.errors import UserError
from vjepa2.qa.qa_config import LMConfig, ModelConfig


class AttentivePooler(nn.Module):
    """``queries`` learned queries cross-attend to the tokens: ``[B, N, D]`` -> ``[B, queries, D]``."""

    def __init__(self, dim: int, queries: int, heads: int = 4) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, dim) * 0.02)
        self.norm_in = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads if dim % heads == 0 else 1, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm_in(tokens)
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        out = q + self.attn(q, x, x, need_weights=False)[0]
        return out + self.mlp(self.norm_mlp(out))


class SpatialPooler(nn.Module):
    """Average pooling of each time step's ``H' x W'`` tokens to ``cells`` = ``(h, w)``.

    ``[B, T' * H' * W', D]`` (raster order t, h, w) -> ``[B, T' * h * w, D]``.
    """

    def __init__(self, grid: tuple[int, int, int], cells: tuple[int, int]) -> None:
        super().__init__()
        if cells[0] > grid[1] or cells[1] > grid[2]:
            raise UserError(f"model.pool_grid {tuple(cells)} is finer than the token grid {grid[1:]}")
        self.grid, self.cells = tuple(grid), tuple(cells)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, N, D = tokens.shape
        T, H, W = self.grid
        if N != T * H * W:
            raise UserError(f"expected {T}x{H}x{W} = {T * H * W} encoder tokens per clip, got {N}")
        x = tokens.view(B * T, H, W, D).permute(0, 3, 1, 2)  # [B T, D, H, W]
        x = F.adaptive_avg_pool2d(x, self.cells)  # [B T, D, h, w]
        return x.permute(0, 2, 3, 1).reshape(B, T * self.cells[0] * self.cells[1], D)


def projector(dim_in: int, dim_out: int, layers: int = 2) -> nn.Sequential:
    """An MLP ``[..., dim_in]`` -> ``[..., dim_out]`` (GELU between ``layers`` linear layers)."""
    mods: list[nn.Module] = [nn.Linear(dim_in, dim_out)]
    for _ in range(layers - 1):
        mods += [nn.GELU(), nn.Linear(dim_out, dim_out)]
    return nn.Sequential(*mods)


def build_lm(cfg: LMConfig, vocab_size: int, pad_id: int, bos_id: int | None, eos_id: int) -> nn.Module:
    """The causal LM: ``from_pretrained(cfg.pretrained)`` (a hub name or saved folder), else from a small config."""
    import transformers

    if cfg.pretrained:
        try:
            return transformers.AutoModelForCausalLM.from_pretrained(cfg.pretrained, dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise UserError(f"config key lm.pretrained: cannot load {cfg.pretrained!r}: {err}") from err
    common = dict(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        tie_word_embeddings=False,
    )
    config_cls = transformers.LlamaConfig if cfg.arch == "llama" else transformers.Qwen2Config
    return transformers.AutoModelForCausalLM.from_config(config_cls(**common))


@dataclass
class Inputs:
    """The LM's input: ``embeds [B, S, H]``, ``mask [B, S]`` (1 = real), ``positions [B, S]``, ``visual`` = V."""

    embeds: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    visual: int


class VideoQAModel(nn.Module):
    """Pooler (optional) + projector + LM; ``projector=None`` is the blind (text-only) model.

    Args:
        lm: a ``transformers`` causal LM.
        pooler: :class:`AttentivePooler`, :class:`SpatialPooler` or None (all ``N`` tokens).
        proj: the projector (None: no video input).
    """

    def __init__(self, lm: nn.Module, pooler: nn.Module | None, proj: nn.Module | None) -> None:
        super().__init__()
        self.lm, self.pooler, self.projector = lm, pooler, proj

    @property
    def video(self) -> bool:
        return self.projector is not None

    def visual_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder tokens ``[B, N, D]`` -> LM input embeddings ``[B, V, H]``."""
        x = features.to(self.projector[0].weight.dtype)
        if self.pooler is not None:
            x = self.pooler(x)
        return self.projector(x)

    def inputs(
        self, features: torch.Tensor | None, ids: torch.Tensor, mask: torch.Tensor, left_pad: bool = False
    ) -> Inputs:
        """Visual tokens, then the embedded text ``ids [B, L]`` (right-padded, ``mask [B, L]``).

        ``left_pad`` moves each row's padding to the front (for generation: every row then ends at its last
        token). Positions count real tokens only, so the visual tokens take positions ``0 .. V - 1`` either way.
        """
        text = self.lm.get_input_embeddings()(ids)  # [B, L, H]
        if self.video:
            if features is None:
                raise UserError("this model reads video: give encoder features")
            vis = self.visual_tokens(features).to(text.dtype)  # [B, V, H]
            embeds = torch.cat([vis, text], 1)
            mask = torch.cat([mask.new_ones(vis.shape[:2]), mask], 1)
        else:
            vis, embeds = text[:, :0], text
        if left_pad:
            S = mask.shape[1]
            shift = S - mask.sum(1, keepdim=True)  # [B, 1] trailing pads of each row
            idx = (torch.arange(S, device=mask.device)[None] - shift) % S  # roll each row right by its pads
            embeds = embeds.gather(1, idx[..., None].expand_as(embeds))
            mask = mask.gather(1, idx)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        return Inputs(embeds, mask, positions, vis.shape[1])

    def logits(self, inp: Inputs) -> torch.Tensor:
        """LM logits ``[B, S, vocab]`` for prepared inputs."""
        out = self.lm(inputs_embeds=inp.embeds, attention_mask=inp.mask, position_ids=inp.positions, use_cache=False)
        return out.logits

    def forward(
        self, features: torch.Tensor | None, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean next-token loss over the labelled text tokens and the per-row sum of their log-probs ``[B]``.

        ``labels [B, L]`` equal ``ids`` on answer tokens and -100 elsewhere (question, padding).
        """
        inp = self.inputs(features, ids, mask)
        logits = self.logits(inp)[:, inp.visual :].float()  # [B, L, vocab]: text positions only
        target = labels[:, 1:]
        logp = torch.log_softmax(logits[:, :-1], -1)
        keep = target != -100
        tok = logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1) * keep  # [B, L - 1]
        loss = -tok.sum() / keep.sum().clamp(min=1)
        return loss, tok.sum(1)

    @torch.no_grad()
    def generate(
        self, features: torch.Tensor | None, ids: torch.Tensor, mask: torch.Tensor, eos_id: int, max_new: int = 8
    ) -> list[list[int]]:
        """Greedy answers to right-padded prompts ``ids [B, L]``: the new token ids of each row, up to eos."""
        inp = self.inputs(features, ids, mask, left_pad=True)
        embed = self.lm.get_input_embeddings()
        out = torch.full((ids.shape[0], 0), eos_id, dtype=torch.long, device=ids.device)
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new):
            nxt = self.logits(inp)[:, -1].argmax(-1)  # [B]
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
            out = torch.cat([out, nxt[:, None]], 1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
            inp.embeds = torch.cat([inp.embeds, embed(nxt)[:, None].to(inp.embeds.dtype)], 1)
            inp.mask = torch.cat([inp.mask, inp.mask.new_ones(ids.shape[0], 1)], 1)
            inp.positions = torch.cat([inp.positions, inp.positions[:, -1:] + 1], 1)
        return [row[: row.index(eos_id)] if eos_id in row else row for row in out.tolist()]


def build_model(cfg: ModelConfig, lm: nn.Module, feature_dim: int, grid: tuple[int, int, int]) -> VideoQAModel:
    """The model of ``cfg`` around ``lm`` for encoder tokens of width ``feature_dim`` on a ``grid`` (T', H', W')."""
    if not cfg.video:
        return VideoQAModel(lm, None, None)
    pooler: nn.Module | None = None
    if cfg.pooling == "attentive":
        pooler = AttentivePooler(feature_dim, cfg.queries)
    elif cfg.pooling == "spatial":
        pooler = SpatialPooler(grid, cfg.pool_grid)
    hidden = lm.get_input_embeddings().weight.shape[1]
    return VideoQAModel(lm, pooler, projector(feature_dim, hidden, cfg.projector_layers))


def trainable(module: nn.Module | None) -> list[Any]:
    return [p for p in module.parameters() if p.requires_grad] if module is not None else []
