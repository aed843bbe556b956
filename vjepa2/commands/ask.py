"""``vjepa2 ask VIDEO "question" --run RUN_DIR``: the answer of a trained video-QA run to a question about a video.

The video (any file FFmpeg reads, or an image) is sampled like the run's clips (``data.frames`` frames at
``--fps``), resized so its short side is ``data.resolution`` and centre-cropped, encoded by the run's frozen
encoder; the answer is generated greedily. With ``--options a,b,c`` the question is multiple choice and the most
likely option is printed (options with commas: separate them with ``|``).
"""

from __future__ import annotations

import argparse
import sys


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", metavar="VIDEO", help="a video file (mp4, ...) or an image (jpg, png, ...)")
    p.add_argument("question", help='e.g. "what colour is the object that moves?"')
    p.add_argument("--run", required=True, help="a folder written by vjepa2 qa train")
    p.add_argument("--options", help="multiple choice: the options, comma- or |-separated")
    p.add_argument("--fps", type=float, default=4.0, help="sampling rate of the video (the synthetic clips: 4)")
    p.add_argument("--max-new-tokens", type=int, default=8)


def _options(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    parts = [o.strip() for o in text.split("|" if "|" in text else ",")]
    return tuple(o for o in parts if o)


def run(args: argparse.Namespace) -> int:
    import torch

    from vjepa2.data.video import VideoReadError, read_video
    from vjepa2.errors import UserError
    from vjepa2.qa.batch import collate, item_batch
    from vjepa2.qa.features import video_to_clip
    from vjepa2.qa.run import load_run
    from vjepa2.qa.synthetic import QAItem
    from vjepa2.qa.tokenizer import normalise_answer

    options = _options(args.options)
    if args.options is not None and len(options) < 2:
        raise UserError(f"--options needs at least two options, got {args.options!r}")
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    question = " ".join(args.question.split())
    if not question:
        raise UserError("the question is empty")
    loaded = load_run(args.run)
    cfg, model, tok = loaded.cfg, loaded.model, loaded.tokenizer
    unknown = getattr(tok, "unk_token_id", None)
    n_unknown = sum(i == unknown for i in tok(question, add_special_tokens=False)["input_ids"])
    if unknown is not None and n_unknown:
        print(
            f"note: {n_unknown} word(s) of the question are not in the run's vocabulary (it was trained on the "
            "synthetic QA questions)",
            file=sys.stderr,
        )
    feats = None
    if model.video:
        try:
            frames = read_video(args.video, cfg.data.frames, args.fps)
        except VideoReadError as err:  # names the file and the cause
            raise UserError(str(err)) from err
        clip = video_to_clip(frames, cfg.data.frames, cfg.data.resolution)[None]  # [1, 3, T, R, R]
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
            feats = loaded.encoder(clip).to(torch.bfloat16)  # [1, N, D]
    else:
        print("note: this run is a blind (text-only) model; it does not look at the video", file=sys.stderr)
    item = QAItem(0, "user", "mc" if options else "open", question, options[0] if options else "", options)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
        if options:
            text = collate(tok, [item.prompt] * len(options), list(options))
            video = feats.expand(len(options), -1, -1) if feats is not None else None
            _, logp = model(video, text.ids, text.mask, text.labels)
            print(options[int(logp.argmax())])
        else:
            text = item_batch(tok, [item], with_answers=False)
            new = model.generate(feats, text.ids, text.mask, tok.eos_token_id, args.max_new_tokens)[0]
            print(normalise_answer(tok.decode(new, skip_special_tokens=True)))
    return 0
