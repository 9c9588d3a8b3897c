"""``vidcls demo``: argument parsing only; the work is in :func:`vidcls.demo.run_demo`."""
from __future__ import annotations

import argparse

from vidcls.cli._common import fail


def cmd_demo(args: argparse.Namespace) -> int:
    from vidcls.demo import run_demo

    try:
        summary = run_demo(out_dir=args.out, quick=args.quick, workers=args.workers,
                           epochs=args.epochs, progress=not args.no_progress, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        return fail("demo", err)
    return 0 if summary.get("ok", True) else 1


def register(subparsers) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser("demo", description="Generate the synthetic temporal dataset, "
                                                  "train a small TSN and a small TSM with the "
                                                  "same budget, evaluate both, predict and "
                                                  "stream the first held-out video of each "
                                                  "class pair; checks TSM >= 95 % top-1 and "
                                                  "TSN <= 60 % within pairs (exit status 1 "
                                                  "when not). No download; about 8 min on 2 "
                                                  "idle CPU cores (--quick: under a minute, "
                                                  "toy size, claim not checked).")
    p.add_argument("--quick", action="store_true", help="toy size (tests, smoke checks)")
    p.add_argument("--out", default=None, help="run directory (default runs/demo[-quick]); "
                   "a previous demo's tsn/ and tsm/ there are replaced, data/ is reused")
    p.add_argument("--workers", type=int, default=None, help="data loading processes")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs of both models (default: the recipe of "
                   "configs/demo_tsm.yaml; fewer end sooner but may not converge: the claim "
                   "check says)")
    p.add_argument("--seed", type=int, default=0,
                   help="training seed of both models (default 0; the videos are always the "
                   "same): another seed is another run, to see that the claim is no luck")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
