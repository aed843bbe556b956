"""Fast batched rollouts of many candidate action sequences from one context (what CEM evaluates).

:meth:`WorldModel.rollout <vjepa2.plan.world_model.WorldModel.rollout>` re-runs the AC predictor on the whole
history at every horizon step, for every candidate. :class:`CachedRollout` computes the same predictions with what
block-causal attention allows (official token layout ``[a_t, s_t, patches_t]`` per step, step ``t`` attending to
steps ``<= t``):

- **Shared prefix.** The context steps ``0 .. T0-2`` (context frames, poses and past actions) are the same for every
  candidate: their keys/values are computed once per plan (batch 1) and every candidate attends to them.
- **KV cache over the horizon.** Rollout step ``h`` only computes the new step ``T0-1+h``; the earlier steps' keys
  and values come from the previous rollout steps (their outputs cannot change: they never see later steps).
- **Shared first layer.** In the first rollout step only the action token differs between candidates. The first
  block's attention for the shared tokens is then a two-way mix of a shared part (softmax over the shared keys,
  computed once) and the candidate's action value, with weight ``sigmoid(q . k_a - logsumexp(q . K_shared))``; the
  output projection is linear, so per candidate only ``heads`` mixing weights per token and the projected action
  values are computed (float32) instead of that block's norm, qkv, attention and projection.
- **RoPE folded into the weights** (``fold_rope``). The positions of a rollout step are fixed, and RoPE is linear
  per position, so ``rope_n(W_q x + b_q)`` is ``(R_n W_q) x + R_n b_q``: one batched matmul over the step's
  positions with per-position q/k weights replaces the qkv projection of q and k and the rotation (equal up to
  rounding the folded weights to the compute dtype).
- **Chunks.** Candidates go through in chunks (a few MiB of activations) that stay in cache; on CPU, glibc keeps
  the freed activations' pages (:func:`~vjepa2.devices.keep_freed_memory`), so the next chunk does not fault them
  in again.

Outputs equal :meth:`WorldModel.rollout` up to low-precision rounding (see ``tests/plan/test_cached_rollout.py``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import torch
import torch.nn.functional as F

from vjepa2.data.poses import compute_new_pose
from vjepa2.devices import intra_op_threads, keep_freed_memory
from vjepa2.models import ACPredictor
from vjepa2.models.encode import layer_norm
from vjepa2.nn import Block, attend, compute_dtype

# Activation budget of a chunk of candidates (elements of the widest activation, the MLP hidden layer): ~8 MiB in
# bf16, inside this machine's L3 and small enough for the allocator to reuse rather than fault in fresh pages.
CHUNK_ELEMENTS = 1 << 22

KV = tuple[torch.Tensor, torch.Tensor]
PoseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_chunk(predictor: ACPredictor, device: torch.device) -> int:
    """Candidates per chunk: :data:`CHUNK_ELEMENTS` over one candidate's MLP activations on CPU, all on GPUs."""
    if device.type != "cpu":
        return 1 << 30
    cfg = predictor.cfg
    per_candidate = (cfg.cond_tokens + cfg.grid**2) * int(cfg.pred_dim * cfg.mlp_ratio)
    return max(1, CHUNK_ELEMENTS // per_candidate)


# Largest per-step table of folded q/k weights (all blocks) ``fold_rope`` builds: ``n x d x 2d`` per block.
FOLD_BYTES = 64 << 20


def fold_rope(block: Block, rope: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The block's q/k projection with RoPE folded in, per position: ``(R_n W, R_n b)`` for ``q`` and ``k``.

    Args:
        block: a transformer block.
        rope: the tables ``(cos, sin)`` ``[n, head_dim]`` of ``n`` positions.
        dtype: the compute dtype (weights are rounded to it before folding, as autocast does, and after).

    Returns:
        ``weight [n, dim, 2 dim]`` and ``bias [n, 1, 2 dim]`` (for ``baddbmm(bias, x [n, B, dim], weight)``, giving
        the rotated ``[q | k]``), then the value projection's ``weight [dim, dim]`` and ``bias [dim]``.
    """
    attn = block.attn
    d, dh = attn.qkv.in_features, attn.head_dim
    w = attn.qkv.weight.detach().to(dtype).float()  # [3d, d]
    b = attn.qkv.bias.detach().to(dtype).float() if attn.qkv.bias is not None else w.new_zeros(3 * d)
    pairs = torch.arange(2 * d, device=w.device).view(-1, 2).flip(-1).flatten()  # swap (2k, 2k + 1)
    cos, sin = (t.float().repeat(1, 2 * d // dh) for t in rope)  # [n, 2d]: every head of q and k
    sin = sin * torch.tensor([-1.0, 1.0], device=w.device).repeat(d)  # rotate_pairs' signs
    weight = cos[:, :, None] * w[: 2 * d] + sin[:, :, None] * w[pairs]  # [n, 2d, d]
    bias = cos * b[: 2 * d] + sin * b[pairs]  # [n, 2d]
    v_weight, v_bias = w[2 * d :].to(dtype), b[2 * d :].to(dtype)
    return weight.transpose(1, 2).to(dtype).contiguous(), bias[:, None].to(dtype), v_weight, v_bias


_FOLDED: weakref.WeakKeyDictionary[ACPredictor, dict] = weakref.WeakKeyDictionary()


def folded_weights(
    predictor: ACPredictor, t: int, dtype: torch.dtype, device: torch.device
) -> list[tuple[torch.Tensor, ...]]:
    """:func:`fold_rope` of every block for the positions of step ``t``; kept per predictor and rebuilt when its
    qkv weights change (in place or replaced)."""
    blocks = predictor.predictor_blocks
    params = [p for blk in blocks for p in blk.attn.qkv.parameters()]
    version = tuple((p.data_ptr(), p._version) for p in params)
    cache = _FOLDED.setdefault(predictor, {})
    key = (t, dtype, torch.device(device))
    if key not in cache or cache[key][0] != version:
        rope = predictor.step_rope(t, dtype, device)
        cache[key] = (version, [fold_rope(blk, rope, dtype) for blk in blocks])
    return cache[key][1]


def folded_step(
    block: Block, x: torch.Tensor, folded: tuple[torch.Tensor, ...], past: KV | None
) -> tuple[torch.Tensor, KV]:
    """:meth:`Block.step` with the q/k projection and RoPE folded per position (see :func:`fold_rope`)."""
    attn = block.attn
    B, n, d = x.shape
    weight, bias, v_weight, v_bias = folded
    h = block.norm1(x)
    qk = torch.baddbmm(bias, h.transpose(0, 1), weight).view(n, B, 2, attn.num_heads, attn.head_dim)
    q, k = qk.permute(2, 1, 3, 0, 4)  # [B, heads, n, head_dim] each
    v = F.linear(h, v_weight, v_bias).view(B, n, attn.num_heads, attn.head_dim).transpose(1, 2)
    kv = (k, v)
    if past is not None:
        k = torch.cat([past[0].expand(B, -1, -1, -1), k], dim=2)
        v = torch.cat([past[1].expand(B, -1, -1, -1), v], dim=2)
    x = x + attn.proj(attend(q, k, v))
    return x + block.mlp(block.norm2(x)), kv


class SharedFirstLayer:
    """The first block of a step whose tokens are shared by all candidates except the first (the action token).

    Args:
        block: the predictor's first block.
        shared: the shared tokens ``[1, n - 1, d]`` (state(, extrinsics) and patches), in the compute dtype.
        rope: RoPE tables of the step's ``n`` tokens ``[n, head_dim]``.
        past: the first block's cached keys/values ``[1, heads, n_past, head_dim]`` of the earlier steps, or None.
    """

    def __init__(self, block: Block, shared: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], past: KV | None):
        self.block = block
        self.rope = rope
        attn = block.attn
        H, dh = attn.num_heads, attn.head_dim
        q, k, v = attn.heads(block.norm1(shared), (rope[0][1:], rope[1][1:]))  # [1, H, n-1, dh]
        self.k_shared, self.v_shared = k, v
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        with _fp32(shared):
            self.keys32, self.values32 = k[0].float(), v[0].float()  # every key/value the candidates share
            self.q = q[0].float()  # [H, n-1, dh]
            scores = (self.q @ self.keys32.transpose(1, 2)) * dh**-0.5  # [H, n-1, Ns]
            self.lse = scores.logsumexp(-1)  # [H, n-1]
            mixed = scores.softmax(-1) @ self.values32  # [H, n-1, dh]: attention output without the action key
            w = attn.proj.weight.to(shared.dtype).float()  # the projection as the compute dtype rounds it
            self.proj_heads = w.view(-1, H, dh).permute(1, 2, 0)  # [H, dh, d]: per-head slices of proj^T
            self.mixed_proj = mixed @ self.proj_heads  # [H, n-1, d]
            self.bias = attn.proj.bias.to(shared.dtype).float()
            self.base = shared[0].float() + self.bias + self.mixed_proj.sum(0)  # [n-1, d]: residual + proj(mixed)

    def __call__(self, action: torch.Tensor, need_kv: bool = True) -> tuple[torch.Tensor, KV | None]:
        """Action tokens ``[B, 1, d]`` -> the block's outputs ``[B, n, d]`` and (with ``need_kv``) its keys and
        values ``[B, heads, n, head_dim]``, token order ``[a, shared...]``."""
        blk, attn = self.block, self.block.attn
        scale = attn.head_dim**-0.5
        rope = (self.rope[0][:1], self.rope[1][:1])
        qa, ka, va = attn.heads(blk.norm1(action), rope)  # [B, H, 1, dh]
        with _fp32(action):
            qa32, ka32, va32 = (t[:, :, 0].float().transpose(0, 1) for t in (qa, ka, va))  # [H, B, dh]
            # The action token attends to every shared key and to itself.
            logits = torch.cat([(qa32 * ka32).sum(-1, keepdim=True), qa32 @ self.keys32.transpose(1, 2)], dim=-1)
            p = (logits * scale).softmax(-1)  # [H, B, 1 + Ns]
            out_a = p[..., :1] * va32 + p[..., 1:] @ self.values32  # [H, B, dh]
            out_a = action[:, 0].float() + self.bias + (out_a @ self.proj_heads).sum(0)  # [B, d]
            # The shared tokens: softmax over [shared keys, k_a] = (1 - alpha) * mixed + alpha * v_a, projected:
            # base_i + sum_h alpha_hbi (proj_h v_a,hb - proj_h mixed_hi).
            alpha = torch.sigmoid((ka32 @ self.q.transpose(1, 2)) * scale - self.lse[:, None])  # [H, B, n-1]
            va_proj = va32 @ self.proj_heads  # [H, B, d]
            shared = torch.bmm(alpha.permute(1, 2, 0), va_proj.transpose(0, 1))  # [B, n-1, d]
            shared -= torch.bmm(alpha.permute(2, 1, 0), self.mixed_proj.transpose(0, 1)).transpose(0, 1)
            shared += self.base
        x = torch.cat([out_a[:, None], shared], dim=1).to(action.dtype)  # [B, n, d]
        x = x + blk.mlp(blk.norm2(x))
        if not need_kv:
            return x, None
        B = action.shape[0]
        k = torch.cat([ka, self.k_shared.expand(B, -1, -1, -1)], dim=2)
        v = torch.cat([va, self.v_shared.expand(B, -1, -1, -1)], dim=2)
        return x, (k, v)


class CachedRollout:
    """Rollouts of candidate action sequences from one context, with everything shared computed once.

    Build it once per plan (it runs the context through the predictor), then call :meth:`rollout` or :meth:`energy`
    once per CEM iteration. Both run under ``torch.inference_mode`` and autocast to ``dtype``.

    On CPU the candidates are split evenly over ``workers`` threads, each running its share chunk by chunk with
    ``torch.get_num_threads() // workers`` intra-op threads: independent streams of work instead of every small op
    split over all cores (no barrier per op; a core taken by another process stalls only its own stream).

    Args:
        predictor: the AC predictor (eval mode, no extrinsics).
        z0: context features ``[1, T0, HW, D]`` (layer-normed, float32).
        s0: context poses ``[1, T0, 7]``.
        past_actions: ``[1, T0 - 1, 7]``, the actions between the context frames (None when ``T0 == 1``).
        pose_fn: ``(state [..., 7], action [..., 7]) -> next state``, for horizon steps after the first.
        dtype: autocast dtype (None: no autocast).
        chunk: candidates per chunk (None: :func:`default_chunk`).
        share_first_layer: the shared-first-layer shortcut (see the module docstring).
        fold_rope: fold RoPE into per-position q/k weights (see the module docstring) when the folded weights of a
            step take at most :data:`FOLD_BYTES`.
        workers: threads on CPU (None: ``torch.get_num_threads()``); always 1 on other devices.
    """

    def __init__(
        self,
        predictor: ACPredictor,
        z0: torch.Tensor,
        s0: torch.Tensor,
        past_actions: torch.Tensor | None = None,
        pose_fn: PoseFn = compute_new_pose,
        dtype: torch.dtype | None = torch.bfloat16,
        chunk: int | None = None,
        share_first_layer: bool = True,
        fold_rope: bool = True,
        workers: int | None = None,
    ) -> None:
        if z0.shape[0] != 1 or s0.shape[0] != 1 or (past_actions is not None and past_actions.shape[0] != 1):
            raise ValueError("CachedRollout needs one context shared by all candidates (batch 1)")
        if predictor.training or predictor.cfg.use_extrinsics:
            raise ValueError("CachedRollout needs a predictor in eval mode without extrinsics")
        self.predictor = predictor
        self.pose_fn = pose_fn
        self.device = z0.device
        self.dtype = dtype
        self.chunk = chunk or default_chunk(predictor, z0.device)
        self.workers = 1 if self.device.type != "cpu" else max(1, workers or torch.get_num_threads())
        if self.device.type == "cpu":
            keep_freed_memory()  # the chunks' activations reuse freed pages instead of faulting in fresh ones
        self.T0 = T0 = z0.shape[1]
        cfg = predictor.cfg
        self.hw = cfg.grid**2
        n, d = cfg.cond_tokens + self.hw, cfg.pred_dim
        size = torch.tensor([], dtype=dtype or torch.float32).element_size()
        self.fold_rope = fold_rope and cfg.depth * n * d * 2 * d * size <= FOLD_BYTES
        self._folded: dict[int, list[tuple[torch.Tensor, ...]]] = {}  # per step: per block (see fold_rope)
        self.s_last = s0[:, -1].float()  # [1, 7]
        self.z_last = z0[:, -1].float()  # [1, HW, D]
        with self._context(), self._small():
            self.past = None  # per block, keys/values of the context steps 0 .. T0-2 (batch 1)
            if T0 > 1:
                if past_actions is None or past_actions.shape[1] != T0 - 1:
                    raise ValueError(f"a context of T0={T0} frames needs past_actions [.., {T0 - 1}, 7]")
                a = past_actions.to(self.device, torch.float32)
                tokens = predictor.embed(z0[:, :-1].float(), a, s0[:, :-1].float())  # [1, T0-1, n, d]
                for t in range(T0 - 1):
                    _, kv = predictor.step(tokens[:, t], t, self.past)
                    self.past = kv if self.past is None else [_cat_kv(p, q) for p, q in zip(self.past, kv, strict=True)]
            # The tokens of the first rollout step but the action: state and frame of the last context frame.
            zero_action = torch.zeros(1, 1, cfg.action_dim, device=self.device)
            self.first_tokens = predictor.embed(self.z_last, zero_action, self.s_last[:, None])[:, 0, 1:]  # [1, n-1, d]
            self.first_layer = None
            if share_first_layer:
                rope = predictor.step_rope(T0 - 1, compute_dtype(self.first_tokens), self.device)
                past0 = None if self.past is None else self.past[0]
                self.first_layer = SharedFirstLayer(predictor.predictor_blocks[0], self.first_tokens, rope, past0)

    def _context(self) -> contextlib.ExitStack:
        """``torch.inference_mode`` and autocast to ``dtype`` (both thread-local: entered again in each worker)."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None))
        return stack

    def _prepare(self, H: int) -> None:
        """The folded q/k weights of the steps of a horizon ``H`` rollout (in the calling thread, once)."""
        if not self.fold_rope:
            return
        with self._context(), self._small():
            for t in range(self.T0 - 1, self.T0 - 1 + H):
                if t not in self._folded:
                    self._folded[t] = folded_weights(self.predictor, t, self.dtype or torch.float32, self.device)

    def _small(self) -> contextlib.AbstractContextManager:
        """One intra-op thread on CPU for the small per-plan work (see :func:`intra_op_threads`)."""
        return intra_op_threads(1) if self.device.type == "cpu" else contextlib.nullcontext()

    def _blocks(self, x: torch.Tensor, t: int, past: list[KV] | None, start: int = 0) -> tuple[torch.Tensor, list[KV]]:
        """Blocks ``start ..`` on step ``t``'s tokens ``[B, n, d]`` (:meth:`ACPredictor.step`, folded RoPE)."""
        p = self.predictor
        folded = self._folded.get(t)
        rope = None if folded else p.step_rope(t, compute_dtype(x), x.device)
        kvs = []
        for i, blk in enumerate(p.predictor_blocks[start:], start=start):
            cache = None if past is None else past[i]
            x, kv = folded_step(blk, x, folded[i], cache) if folded else blk.step(x, rope, cache)
            kvs.append(kv)
        return x, kvs

    def _first_step(self, actions: torch.Tensor, need_kv: bool) -> tuple[torch.Tensor, list[KV | None]]:
        """Step ``T0 - 1`` for actions ``[B, 7]``: outputs ``[B, n, d]`` and its keys/values (with ``need_kv``)."""
        p = self.predictor
        a_tok = p.action_encoder(actions[:, None] * p.cfg.action_scale)  # [B, 1, d]
        B = a_tok.shape[0]
        if self.first_layer is None:
            x = torch.cat([a_tok, self.first_tokens.expand(B, -1, -1).to(a_tok.dtype)], dim=1)
            return self._blocks(x, self.T0 - 1, self.past)
        x, kv0 = self.first_layer(a_tok, need_kv)
        x, kvs = self._blocks(x, self.T0 - 1, self.past, start=1)
        return x, [kv0, *kvs]

    def _chunk(self, actions: torch.Tensor) -> torch.Tensor:
        """Candidates ``[B, H, 7]`` -> predicted features of the last step ``[B, HW, D]``, float32."""
        p = self.predictor
        B, H, _ = actions.shape
        x, kv = self._first_step(actions[:, 0], need_kv=H > 1)
        frame, state, past = self.z_last, self.s_last.expand(B, -1), self.past
        for h in range(H):
            z = layer_norm(p.readout(x[:, None], frame.expand(B, -1, -1)))  # [B, HW, D]: frame T0 + h
            if h == H - 1:
                break
            past = kv if past is None else [_cat_kv(a, b) for a, b in zip(past, kv, strict=True)]
            state = self.pose_fn(state, actions[:, h])
            tokens = p.embed(z[:, None], actions[:, h + 1 : h + 2], state[:, None])[:, 0]
            x, kv = self._blocks(tokens, self.T0 + h, past)
            frame = z
        return z

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """``fn`` on the predictions of every chunk of candidates ``[S, H, 7]``, concatenated in order."""
        actions = actions.to(self.device, torch.float32)
        S = actions.shape[0]
        if S == 0 or actions.shape[1] == 0:
            raise ValueError(f"need candidates [S >= 1, H >= 1, 7], got {tuple(actions.shape)}")
        self._prepare(actions.shape[1])
        workers = min(self.workers, S)
        bounds = [S * w // workers for w in range(workers + 1)]  # an even split over the workers

        def work(lo: int, hi: int, threads: int | None) -> list[torch.Tensor]:
            if threads is not None:
                torch.set_num_threads(threads)
            k = -(-(hi - lo) // self.chunk)  # chunks of equal size (+-1), at most ``chunk``
            cuts = [lo + (hi - lo) * j // k for j in range(k + 1)]
            with self._context():
                return [fn(self._chunk(actions[i:j])) for i, j in pairwise(cuts)]

        if workers == 1:
            return torch.cat(work(0, S, None))
        threads = torch.get_num_threads()
        try:
            jobs = [_pool(workers).submit(work, lo, hi, max(1, threads // workers)) for lo, hi in pairwise(bounds)]
            return torch.cat([out for job in jobs for out in job.result()])
        finally:
            torch.set_num_threads(threads)

    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        """Predicted features of the last rollout step ``[S, HW, D]`` (float32) for candidates ``[S, H, 7]``."""
        return self._map(lambda pred: pred, actions)

    def energy(self, actions: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """:func:`~vjepa2.plan.energy.l1_energy` of each candidate's last prediction to ``goal`` ``[HW, D]``: ``[S]``.

        Computed in place on each chunk's (fresh) predictions: the same arithmetic without the temporaries, and no
        ``[S, HW, D]`` tensor.
        """
        goal = goal.reshape(self.hw, -1).to(self.device, torch.float32)
        return self._map(lambda pred: pred.sub_(goal).abs_().mean(dim=(-2, -1)), actions)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads (kept: starting threads per CEM iteration costs time)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="vjepa2-rollout")
    return _POOLS[workers]


def _fp32(x: torch.Tensor) -> torch.autocast:
    """Autocast off on ``x``'s device: the shared-first-layer algebra runs in float32."""
    return torch.autocast(x.device.type, enabled=False)


def _cat_kv(a: KV, b: KV) -> KV:
    """Append step keys/values ``b`` ``[B, H, n, dh]`` to cached ``a`` ``[1 or B, H, m, dh]`` along the tokens."""
    B = b[0].shape[0]
    return tuple(torch.cat([x.expand(B, -1, -1, -1), y], dim=2) for x, y in zip(a, b, strict=True))
