"""``vidcls predict``: argument parsing only; the work is in
:func:`vidcls.inference.predict.predict` (a few files) and
:func:`vidcls.inference.batch.predict_library` (``--list``: a whole library)."""
from __future__ import annotations

import argparse
import json
import sys

from vidcls.cli._common import add_model_source, add_precision, fail, model_source


def cmd_predict(args: argparse.Namespace) -> int:
    if bool(args.videos) == bool(args.list):
        return fail("predict", ValueError("give VIDEO files or --list FILE|DIR (not both)"))
    if args.list and not args.output:
        return fail("predict", ValueError("--list needs --output preds.jsonl (one JSON line "
                                          "per video; a rerun skips the videos already there)"))
    try:
        checkpoint = model_source(args)
        if args.list:
            return _predict_library(args, checkpoint)
        from vidcls.inference.predict import predict

        results = predict(args.videos, checkpoint, top_k=args.top_k, num_clips=args.clips,
                          num_crops=args.crops, twice=args.twice, device=args.device,
                          precision=args.precision)
    except (OSError, ValueError) as err:  # OSError: also a failed download (--model)
        return fail("predict", err)
    from vidcls.inference.predict import format_predictions

    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 1 if any(r.get("error") for r in results) else 0


def _predict_library(args: argparse.Namespace, checkpoint: str) -> int:
    from vidcls.inference.batch import predict_library

    s = predict_library(args.list, checkpoint, args.output, top_k=args.top_k,
                        batch_size=args.batch_size, workers=args.workers, num_clips=args.clips,
                        num_crops=args.crops, device=args.device, precision=args.precision,
                        progress=not args.no_progress)
    rate = s["written"] / s["seconds"] if s["seconds"] else 0.0
    print(f"vidcls predict: {s['written']} videos written to {s['output']} "
          f"({s['errors']} unreadable, as error lines; {s['done_before']} already there), "
          f"{rate:.1f} videos/s", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``predict``."""
    p = subparsers.add_parser("predict", description="Predict video files with a checkpoint "
                                                     "(its stored preprocessing is used). "
                                                     "--list FILE|DIR --output preds.jsonl "
                                                     "predicts a whole library: decoding in "
                                                     "worker processes, batched, resumable, "
                                                     "sharded under torchrun.")
    p.add_argument("videos", nargs="*", metavar="VIDEO")
    add_model_source(p)
    p.add_argument("--list", metavar="FILE|DIR",
                   help="a list file (one video per line) or a folder of videos")
    p.add_argument("--output", metavar="PREDS.jsonl", help="with --list: the JSON-lines output")
    p.add_argument("--batch-size", type=int, default=8, help="with --list: clips per forward")
    p.add_argument("--workers", type=int, default=2, help="with --list: decoding processes")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--clips", type=int, default=1)
    p.add_argument("--crops", type=int, default=1, choices=[1, 3, 10])
    p.add_argument("--twice", action="store_true")
    p.add_argument("--device", default="cpu")
    add_precision(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_predict)
