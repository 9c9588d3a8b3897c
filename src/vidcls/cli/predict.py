"""``vidcls predict``: argument parsing only; the work is in
:func:`vidcls.inference.predict.predict`."""
from __future__ import annotations

import argparse
import json

from vidcls.cli._common import add_model_source, add_precision, fail, model_source


def cmd_predict(args: argparse.Namespace) -> int:
    from vidcls.inference.predict import format_predictions, predict

    try:
        checkpoint = model_source(args)
        results = predict(args.videos, checkpoint, top_k=args.top_k, num_clips=args.clips,
                          num_crops=args.crops, twice=args.twice, device=args.device,
                          precision=args.precision)
    except (OSError, ValueError) as err:  # OSError: also a failed download (--model)
        return fail("predict", err)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 1 if any(r.get("error") for r in results) else 0


def register(subparsers) -> None:
    """Add ``predict``."""
    p = subparsers.add_parser("predict", description="Predict video files with a checkpoint "
                                                     "(its stored preprocessing is used).")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    add_model_source(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--clips", type=int, default=1)
    p.add_argument("--crops", type=int, default=1, choices=[1, 3, 10])
    p.add_argument("--twice", action="store_true")
    p.add_argument("--device", default="cpu")
    add_precision(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_predict)
