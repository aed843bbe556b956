"""Parameter names: ours (= official, unprefixed) <-> Hugging Face ``transformers`` VJEPA2, both ways, losslessly.

HF splits every fused projection: the blocks' ``attn.qkv`` into ``query/key/value`` (encoder, predictor) or
``q_proj/k_proj/v_proj`` (pooler), and the probe's cross-attention ``xattn.kv`` into ``k_proj/v_proj``. HF
stacks the predictor's mask tokens ``mask_tokens.{i}`` ``[1, 1, d]`` into one ``embeddings.mask_tokens``
``[n, 1, 1, d]``. ``VJEPA2Model`` keys start with ``encoder.`` / ``predictor.``; ``VJEPA2ForVideoClassification``
nests them under ``vjepa2.`` and adds ``pooler.*`` and ``classifier.*``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from vjepa2.weights.checks import WeightsError

PARTS = ("encoder", "predictor", "classifier")
_PART_PREFIX = {"encoder": "encoder.", "predictor": "predictor.", "classifier": ""}
_MASK_TOKEN = re.compile(r"mask_tokens\.(\d+)")
_HF_MASK_TOKENS = "embeddings.mask_tokens"


class _Rule:
    """One module name: ours (a template with an optional ``{i}``) <-> 1 or ``n`` HF names (``n`` = fused split)."""

    def __init__(self, ours: str, *hf: str) -> None:
        self.ours, self.hf = ours, hf
        self.ours_rx = self._regex(ours)
        self.hf_rx = tuple(self._regex(h) for h in hf)

    @staticmethod
    def _regex(template: str) -> re.Pattern[str]:
        return re.compile(re.escape(template).replace(r"\{i\}", r"(\d+)"))


def _block_rules(ours: str, hf: str, pooler: bool) -> list[_Rule]:
    """Rules for one transformer block ``ours`` = ``{prefix}.{i}`` (encoder/predictor or pooler naming)."""
    if pooler:
        att, names, norms = "self_attn", ("q_proj", "k_proj", "v_proj", "out_proj"), ("layer_norm1", "layer_norm2")
    else:
        att, names, norms = "attention", ("query", "key", "value", "proj"), ("norm1", "norm2")
    return [
        _Rule(f"{ours}.norm1", f"{hf}.{norms[0]}"),
        _Rule(f"{ours}.norm2", f"{hf}.{norms[1]}"),
        _Rule(f"{ours}.attn.qkv", *(f"{hf}.{att}.{n}" for n in names[:3])),
        _Rule(f"{ours}.attn.proj", f"{hf}.{att}.{names[3]}"),
        _Rule(f"{ours}.mlp.fc1", f"{hf}.mlp.fc1"),
        _Rule(f"{ours}.mlp.fc2", f"{hf}.mlp.fc2"),
    ]


_CROSS = "pooler.cross_attention_block"
_HF_CROSS = "pooler.cross_attention_layer"
RULES: dict[str, list[_Rule]] = {
    "encoder": [
        _Rule("patch_embed.proj", "embeddings.patch_embeddings.proj"),
        *_block_rules("blocks.{i}", "layer.{i}", pooler=False),
        _Rule("norm", "layernorm"),
    ],
    "predictor": [
        _Rule("predictor_embed", "embeddings.predictor_embeddings"),
        *_block_rules("predictor_blocks.{i}", "layer.{i}", pooler=False),
        _Rule("predictor_norm", "layernorm"),
        _Rule("predictor_proj", "proj"),
    ],
    "classifier": [
        _Rule("pooler.query_tokens", "pooler.query_tokens"),
        *_block_rules("pooler.blocks.{i}", "pooler.self_attention_layers.{i}", pooler=True),
        _Rule(f"{_CROSS}.norm1", f"{_HF_CROSS}.layer_norm1"),
        _Rule(f"{_CROSS}.norm2", f"{_HF_CROSS}.layer_norm2"),
        _Rule(f"{_CROSS}.xattn.q", f"{_HF_CROSS}.cross_attn.q_proj"),
        _Rule(f"{_CROSS}.xattn.kv", f"{_HF_CROSS}.cross_attn.k_proj", f"{_HF_CROSS}.cross_attn.v_proj"),
        _Rule(f"{_CROSS}.mlp.fc1", f"{_HF_CROSS}.mlp.fc1"),
        _Rule(f"{_CROSS}.mlp.fc2", f"{_HF_CROSS}.mlp.fc2"),
        _Rule("linear", "classifier"),
    ],
}


def _split_leaf(key: str) -> tuple[str, str]:
    """``a.b.weight`` -> ``("a.b", ".weight")``; a bare parameter (``pooler.query_tokens``) -> ``(key, "")``."""
    for leaf in (".weight", ".bias"):
        if key.endswith(leaf):
            return key[: -len(leaf)], leaf
    return key, ""


def _fill(template: str, groups: tuple[str, ...]) -> str:
    return template.replace("{i}", groups[0]) if groups else template


def _our_key_to_hf(part: str, key: str) -> tuple[str, ...] | None:
    module, leaf = _split_leaf(key)
    for rule in RULES[part]:
        m = rule.ours_rx.fullmatch(module)
        if m:
            return tuple(_fill(h, m.groups()) + leaf for h in rule.hf)
    return None


def _hf_key_to_ours(part: str, key: str) -> tuple[str, int, int] | None:
    """HF key -> ``(our key, piece index, number of pieces)``."""
    module, leaf = _split_leaf(key)
    for rule in RULES[part]:
        for j, rx in enumerate(rule.hf_rx):
            m = rx.fullmatch(module)
            if m:
                return _fill(rule.ours, m.groups()) + leaf, j, len(rule.hf)
    return None


def _stack_mask_tokens(tokens: dict[int, torch.Tensor]) -> torch.Tensor:
    if sorted(tokens) != list(range(len(tokens))):
        raise WeightsError(f"predictor mask tokens must be numbered 0..n-1, got indices {sorted(tokens)}")
    return torch.stack([tokens[i] for i in range(len(tokens))])


def ours_to_hf(
    parts: Mapping[str, Mapping[str, torch.Tensor]], classification: bool = False
) -> dict[str, torch.Tensor]:
    """Our state dicts ``{"encoder": sd, "predictor": sd, "classifier": sd}`` -> one HF state dict.

    Args:
        parts: any subset of :data:`PARTS`.
        classification: nest encoder/predictor under ``vjepa2.`` (``VJEPA2ForVideoClassification``); implied by a
            non-empty classifier part.

    Raises:
        WeightsError: a key has no HF counterpart (e.g. a multi-query probe's ``heads.*``) or a fused tensor
            does not split evenly.
    """
    nest = "vjepa2." if classification or parts.get("classifier") else ""
    out: dict[str, torch.Tensor] = {}
    for part, sd in parts.items():
        prefix = ("" if part == "classifier" else nest) + _PART_PREFIX[part]
        tokens: dict[int, torch.Tensor] = {}
        unknown = []
        for key, value in sd.items():
            m = _MASK_TOKEN.fullmatch(key) if part == "predictor" else None
            if m:
                tokens[int(m.group(1))] = value
                continue
            names = _our_key_to_hf(part, key)
            if names is None:
                unknown.append(key)
            elif value.shape[0] % len(names):
                raise WeightsError(f"{part} {key} {tuple(value.shape)} does not split into {len(names)} for HF")
            else:
                out.update({prefix + n: t for n, t in zip(names, value.chunk(len(names), dim=0), strict=True)})
        if unknown:
            raise WeightsError(f"these {part} keys have no Hugging Face VJEPA2 counterpart: {unknown}")
        if tokens:
            out[prefix + _HF_MASK_TOKENS] = _stack_mask_tokens(tokens)
    return out


def part_of(key: str) -> tuple[str, str] | None:
    """``(part, key relative to the part)`` for an HF key, ``vjepa2.`` nesting removed."""
    key = key.removeprefix("vjepa2.")
    for part in ("encoder", "predictor"):
        if key.startswith(_PART_PREFIX[part]):
            return part, key[len(_PART_PREFIX[part]) :]
    if key.startswith(("pooler.", "classifier.")):
        return "classifier", key
    return None


def hf_to_ours(sd: Mapping[str, torch.Tensor], source: str = "the Hugging Face state dict") -> dict[str, dict]:
    """One HF VJEPA2 state dict -> ours, split into ``{"encoder": sd, "predictor": sd, "classifier": sd}``.

    Parts absent from ``sd`` come back empty. Fused projections are concatenated back in q, k, v order.

    Raises:
        WeightsError: keys that map to nothing, or a fused projection with pieces missing (all listed).
    """
    parts: dict[str, dict] = {p: {} for p in PARTS}
    pieces: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    n_pieces: dict[tuple[str, str], int] = {}
    unknown = []
    for key, value in sd.items():
        found = part_of(key)
        if found and found[0] == "predictor" and found[1] == _HF_MASK_TOKENS:
            parts["predictor"].update({f"mask_tokens.{i}": t for i, t in enumerate(value.unbind(0))})
            continue
        mapped = _hf_key_to_ours(*found) if found else None
        if mapped is None:
            unknown.append(key)
            continue
        ours, j, n = mapped
        pieces.setdefault((found[0], ours), {})[j] = value
        n_pieces[(found[0], ours)] = n
    for (part, ours), got in pieces.items():
        n = n_pieces[(part, ours)]
        if sorted(got) != list(range(n)):
            unknown.append(f"{ours} (only {len(got)} of its {n} split pieces present)")
            continue
        parts[part][ours] = got[0] if n == 1 else torch.cat([got[j] for j in range(n)], dim=0)
    if unknown:
        raise WeightsError(f"{source}: {len(unknown)} keys are not V-JEPA 2 weights this package knows: {unknown}")
    return parts
