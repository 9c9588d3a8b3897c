"""``vidcls explain``: argument parsing only; the work is in
:func:`vidcls.inference.explain.explain_video`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidcls.cli._common import add_model_source, fail, model_source


def cmd_explain(args: argparse.Namespace) -> int:
    from vidcls.inference.explain import explain_video

    if not Path(args.video).is_file():
        return fail("explain", FileNotFoundError(f"video {args.video!r} not found"))
    try:
        record = explain_video(args.video, model_source(args), args.output, target=args.target,
                               method=args.method, alpha=args.alpha, fps=args.fps)
    except (OSError, ValueError) as err:  # OSError: also a failed download (--model)
        return fail("explain", err)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        top = ", ".join(f"{p['label']} {100 * p['probability']:.0f}%"
                        for p in record["predictions"])
        print(f"{record['video']}: {top}\n{record['method']} heat maps "
              f"({record['frames']} frames, {record['map_size'][0]}x{record['map_size'][1]} "
              f"grid) -> {', '.join(record['outputs'])}")
    return 0


def register(subparsers) -> None:
    """Add ``explain``."""
    p = subparsers.add_parser("explain", description="Attention rollout (TimeSformer) or "
                                                     "Grad-CAM (TSN/TSM) per frame; writes "
                                                     "OUTPUT/explain.png (frames x overlays), "
                                                     "OUTPUT/explain.mp4 and "
                                                     "OUTPUT/explain.json.")
    p.add_argument("video", metavar="VIDEO")
    add_model_source(p)
    p.add_argument("--output", "-o", required=True, help="output directory")
    p.add_argument("--method", default="auto", choices=["auto", "rollout", "gradcam"])
    p.add_argument("--class", dest="target", default=None, metavar="CLASS",
                   help="class name or index to explain (Grad-CAM; default: the prediction)")
    p.add_argument("--alpha", type=float, default=0.5, help="heat-map opacity")
    p.add_argument("--fps", type=int, default=4, help="frame rate of explain.mp4")
    p.add_argument("--json", action="store_true", help="print the JSON record")
    p.set_defaults(func=cmd_explain)
