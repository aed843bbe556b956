"""``vjepa2 weights list|convert``: every model by name, and official files <-> Hugging Face folders."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="every known model: name, size, file, URL, Hugging Face id, cached or not")
    conv = sub.add_parser("convert", help="an official .pt -> a Hugging Face folder, or a folder -> an official .pt")
    conv.add_argument("source", help="official .pt file (or a released name) or a Hugging Face VJEPA2 folder")
    conv.add_argument("out", help="the folder (to hf) or .pt file (to official) to write; never overwritten")
    conv.add_argument("--model", help="encoder preset (default: read from the weights)")
    conv.add_argument("--no-predictor", action="store_true", help="convert the encoder only")


def _rows() -> list[tuple[str, ...]]:
    from vjepa2.weights.hub import RELEASES, cached
    from vjepa2.weights.packaged import PACKAGED, PACKAGED_WORLD_MODELS, packaged_path, read_packaged

    rows = []
    for rel in RELEASES:
        rows.append((rel.preset, rel.params, rel.file, rel.url, rel.hf or "-", "yes" if cached(rel.preset) else "no"))
    for name, file in (PACKAGED | PACKAGED_WORLD_MODELS).items():
        try:
            parts, _ = read_packaged(packaged_path(name))
            sizes = [f"{sum(v.numel() for v in sd.values()) / 1e6:.1f}M" for sd in parts.values()]
            size, where = (" + ".join(sizes) if name in PACKAGED_WORLD_MODELS else sizes[0]), "packaged"
        except Exception:
            size, where = "-", "missing"
        rows.append((name, size, file, "(inside the package)", "-", where))
    return rows


def _convert(args: argparse.Namespace) -> None:
    from vjepa2.errors import UserError
    from vjepa2.weights import load_encoder, load_predictor, save_hf, save_official
    from vjepa2.weights.hf import hf_folder

    out = Path(args.out)
    if out.exists():
        raise UserError(f"{out} exists; choose a new name (conversions never overwrite)")
    source = args.source
    if not Path(source).exists():  # a released name: download once
        from vjepa2.weights.hub import fetch

        source = str(fetch(source))
    from vjepa2.config import ENCODER_PRESETS

    encoder = load_encoder(args.model, source)
    name = args.model or next((n for n, cfg in ENCODER_PRESETS.items() if cfg == encoder.cfg), None)
    if name is None and not args.no_predictor:
        print("note: no preset matches the encoder exactly (give --model); converting the encoder only")
    predictor = None if args.no_predictor or name is None else load_predictor(name, source)
    if hf_folder(source) is None:
        folder = save_hf(out, encoder=encoder, predictor=predictor)
        print(f"wrote Hugging Face folder {folder}")
    else:
        path = save_official(out, encoder=encoder, predictor=predictor)
        print(f"wrote official checkpoint {path}")


def run(args: argparse.Namespace) -> int:
    if args.action == "convert":
        _convert(args)
        return 0
    rows = [("name", "size", "file", "URL", "Hugging Face", "cached"), *_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    from vjepa2.weights.hub import cache_dir

    print(f"\ncache: {cache_dir()} (set TORCH_HOME to move it); Hugging Face ids load as 'hf:<id>'")
    return 0
