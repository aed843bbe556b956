"""V-JEPA 2-AC action-conditioned predictor (official ``src/models/ac_predictor.py``).

Per time step ``t`` the token sequence is ``[a_t, s_t, (e_t), p_{t,0} .. p_{t,HW-1}]``: the embedded action,
state (and optional camera extrinsics), then the frame's patch features. Attention is block-causal over time
(full inside a step), frame tokens get 3D-RoPE at ``(t, h, w)`` and the conditioning tokens rotate only their
time band at ``t``. The output at step ``t`` predicts the features of frame ``t + 1``.

``ACPredictorConfig.residual`` (not in the official model, off by default) adds the input frame's features to the
output and zero-initialises the output projection, so an untrained predictor is exactly "nothing changes" (copy the
current frame) and only has to learn the change; on small CPU budgets this decides whether the predictor beats
copying the current frame at all.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from vjepa2.config import ACPredictorConfig
from vjepa2.nn import Block, RoPE3D, compute_dtype, grid_positions, run_blocks
from vjepa2.nn.init import init_weights, rescale_blocks


@lru_cache(maxsize=8)
def _block_causal_mask(steps: int, tokens_per_step: int, device: torch.device) -> torch.Tensor:
    time = torch.arange(steps, device=device).repeat_interleave(tokens_per_step)
    return time.unsqueeze(0) <= time.unsqueeze(1)


def block_causal_mask(steps: int, tokens_per_step: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool ``[L, L]`` with ``L = steps * tokens_per_step``: token i may attend to j iff ``step(j) <= step(i)``."""
    return _block_causal_mask(steps, tokens_per_step, torch.device(device))


class ACPredictor(nn.Module):
    """``(frame features [B, T*HW, D], actions [B, T, 7], states [B, T, 7]) -> next-frame features [B, T*HW, D]``."""

    def __init__(self, cfg: ACPredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.pred_dim
        self.predictor_embed = nn.Linear(cfg.embed_dim, d)
        self.action_encoder = nn.Linear(cfg.action_dim, d)
        self.state_encoder = nn.Linear(cfg.state_dim, d)
        self.extrinsics_encoder = nn.Linear(cfg.extrinsics_dim, d)  # present in the official weights even unused
        self.predictor_blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.predictor_norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.predictor_proj = nn.Linear(d, cfg.embed_dim)
        self.rope = RoPE3D(d // cfg.num_heads, cfg.rope_layout, cfg.rope_base)
        self.grad_checkpointing = False
        self._rope_cache: dict[tuple[int, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self.apply(init_weights)
        rescale_blocks(self.predictor_blocks)
        if cfg.residual:  # start from the copy baseline exactly
            nn.init.zeros_(self.predictor_proj.weight)
            nn.init.zeros_(self.predictor_proj.bias)

    def _rope(self, steps: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables ``[L, head_dim]`` for one sequence: per step the conditioning tokens, then the patch grid.

        Cached per ``(steps, dtype, device)`` (they depend on the config only); treat them as read-only.
        """
        key = (steps, dtype, torch.device(device))
        tables = self._rope_cache.get(key)
        if tables is None:
            g, c = self.cfg.grid, self.cfg.cond_tokens
            # Plain tensors even under inference mode, so a cache filled while planning still works in training.
            with torch.inference_mode(False), torch.no_grad():
                ids = torch.arange(steps * g * g, device=device).view(steps, g * g)
                frame = self.rope(*grid_positions(ids, (g, g)), dtype=dtype)
                cond = self.rope(torch.arange(steps, device=device)[:, None].expand(steps, c), dtype=dtype)
                tables = tuple(torch.cat([cc, ff], dim=1).flatten(0, 1) for cc, ff in zip(cond, frame, strict=True))
            if len(self._rope_cache) >= 16:
                self._rope_cache.clear()
            self._rope_cache[key] = tables
        return tables

    def step_rope(self, t: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables ``[c + HW, head_dim]`` of the tokens of time step ``t``."""
        n = self.cfg.cond_tokens + self.cfg.grid**2
        cos, sin = self._rope(t + 1, dtype, device)
        return cos[t * n :], sin[t * n :]

    def embed(
        self,
        x: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The input tokens before the blocks: ``[B, T, c + HW, d]``, per step ``[a_t, s_t, (e_t), patches]``.

        Shapes as :meth:`forward`; ``x`` may also be ``[B, T, HW, D]``.
        """
        B, T = actions.shape[:2]
        hw = self.cfg.grid**2
        N = x.shape[1] * (x.shape[2] if x.ndim == 4 else 1)
        if N != T * hw:
            raise ValueError(
                f"x has {N} tokens but actions {tuple(actions.shape)} give T={T} steps of {hw} tokens "
                f"({self.cfg.grid}x{self.cfg.grid} patches at img_size={self.cfg.img_size})"
            )
        if states.shape[:2] != (B, T):
            raise ValueError(f"states has shape {tuple(states.shape)}, expected [B={B}, T={T}, {self.cfg.state_dim}]")
        cond = [self.action_encoder(actions * self.cfg.action_scale), self.state_encoder(states * self.cfg.state_scale)]
        if self.cfg.use_extrinsics:
            if extrinsics is None:
                raise ValueError("this AC predictor has use_extrinsics=True: pass extrinsics [B, T, 6]")
            cond.append(self.extrinsics_encoder(extrinsics))
        frames = self.predictor_embed(x).view(B, T, hw, -1)
        return torch.cat([torch.stack(cond, dim=2), frames], dim=2)

    def readout(self, tokens: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Output tokens ``[B, T, c + HW, d]`` -> predictions ``[B, T * HW, D]``; ``x`` the input features ``[B, T *
        HW, D]`` (added back with ``residual``)."""
        tokens = tokens[:, :, self.cfg.cond_tokens :].flatten(1, 2)
        out = self.predictor_proj(self.predictor_norm(tokens))
        return out + x if self.cfg.residual else out

    def step(
        self, tokens: torch.Tensor, t: int, past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The blocks on the tokens of one time step, attending to the cached keys/values of the earlier steps.

        Block-causal attention makes this exact: step ``t``'s outputs depend on steps ``<= t`` only, and the earlier
        steps never see it. Running steps ``0 .. T-1`` one at a time, each with the concatenated caches of the
        earlier ones, gives :meth:`forward`'s tokens.

        Args:
            tokens: step ``t``'s input tokens ``[B, c + HW, d]`` (from :meth:`embed`).
            t: the time step (RoPE position).
            past: per block, the rotated keys and values ``[1 or B, heads, t * (c + HW), head_dim]`` of steps
                ``< t``; None when ``t == 0``.

        Returns:
            Step ``t``'s output tokens ``[B, c + HW, d]`` and, per block, its keys and values ``[B, heads, c + HW,
            head_dim]``.
        """
        rope = self.step_rope(t, compute_dtype(tokens), tokens.device)
        kvs = []
        for i, blk in enumerate(self.predictor_blocks):
            tokens, kv = blk.step(tokens, rope, None if past is None else past[i])
            kvs.append(kv)
        return tokens, kvs

    def forward(
        self,
        x: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict next-frame features.

        Args:
            x: layer-normed frame features ``[B, T * HW, D]``, frames encoded one at a time at ``img_size``.
            actions: ``[B, T, action_dim]``, the action taken after each frame.
            states: ``[B, T, state_dim]``, the proprioceptive state at each frame.
            extrinsics: ``[B, T, extrinsics_dim]``, required when the config has ``use_extrinsics``.

        Returns:
            ``[B, T * HW, D]``; step ``t`` is the prediction of frame ``t + 1``.
        """
        tokens = self.embed(x, actions, states, extrinsics)
        B, T, n, _ = tokens.shape
        tokens = tokens.flatten(1, 2)  # [B, T * (c + HW), d]
        rope = self._rope(T, compute_dtype(tokens), x.device)
        mask = block_causal_mask(T, n, x.device) if T > 1 else None  # one step: full attention
        tokens = run_blocks(self.predictor_blocks, tokens, rope, mask, checkpointing=self.grad_checkpointing)
        return self.readout(tokens.view(B, T, n, -1), x)
