"""``vidcls info``: parameters, GFLOPs per clip and input spec, from :mod:`vidcls.info`."""
from __future__ import annotations

import argparse
import json

from vidcls.cli._common import fail, parse_options


def cmd_info(args: argparse.Namespace) -> int:
    from vidcls.info import format_info, model_info
    from vidcls.models import list_models

    names = [args.model] if args.model else list_models()
    options = parse_options(args.option, example="shift_div=4")
    results = []
    for name in names:
        try:
            results.append(model_info(name, num_frames=args.frames, size=args.size,
                                      num_classes=args.num_classes, **options))
        except (ValueError, TypeError) as err:
            return fail("info", err)
    if args.json:
        print(json.dumps(results if not args.model else results[0], indent=2, default=list))
    elif args.model:
        print(format_info(results[0]))
    else:
        print(f"{'model':<22}{'frames':>7}{'size':>6}{'params (M)':>12}{'GFLOPs':>10}")
        for r in results:
            _, t, _, h, _ = r["input_shape"]
            print(f"{r['model']:<22}{t:>7}{h:>6}{r['params'] / 1e6:>12.2f}"
                  f"{r['gflops_paper']:>10.1f}")
        print("GFLOPs = multiply-adds per clip (the papers' convention). "
              "Details: vidcls info MODEL [--frames T --size S -o key=value]")
    return 0


def register(subparsers) -> None:
    """Add ``info``."""
    p = subparsers.add_parser("info", description="Print parameters, GFLOPs per clip and the "
                                                  "input spec of a model (all built-in models "
                                                  "when MODEL is omitted).")
    p.add_argument("model", nargs="?", help="model name (see the list printed without it)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: model's)")
    p.add_argument("--size", type=int, default=None, help="crop size in pixels (default: model's)")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option, e.g. -o shift_div=4 -o attention=joint")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
