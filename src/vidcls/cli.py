"""The ``vidcls`` command. Thin: parses arguments, then calls the library."""
from __future__ import annotations

import argparse
import json
import sys

import yaml


def parse_options(pairs: list[str]) -> dict:
    """``["shift_div=4", "attention=joint"]`` -> ``{"shift_div": 4, "attention": "joint"}``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"vidcls: error: option {pair!r} is not KEY=VALUE (e.g. shift_div=4)")
        options[key] = yaml.safe_load(value)
    return options


def cmd_info(args: argparse.Namespace) -> int:
    from vidcls.info import format_info, model_info
    from vidcls.models import list_models

    names = [args.model] if args.model else list_models()
    options = parse_options(args.option)
    results = []
    for name in names:
        try:
            results.append(model_info(name, num_frames=args.frames, size=args.size,
                                      num_classes=args.num_classes, **options))
        except (ValueError, TypeError) as err:
            print(f"vidcls info: error: {err}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(results if not args.model else results[0], indent=2, default=list))
    elif args.model:
        print(format_info(results[0]))
    else:
        print(f"{'model':<22}{'frames':>7}{'size':>6}{'params (M)':>12}{'GFLOPs':>10}")
        for r in results:
            _, t, _, h, _ = r["input_shape"]
            print(f"{r['model']:<22}{t:>7}{h:>6}{r['params'] / 1e6:>12.2f}{r['gflops_paper']:>10.1f}")
        print("GFLOPs = multiply-adds per clip (the papers' convention). "
              "Details: vidcls info MODEL [--frames T --size S -o key=value]")
    return 0


def add_info_parser(sub) -> None:
    p = sub.add_parser("info", help="parameters, GFLOPs per clip and input spec of a model",
                       description="Print parameters, GFLOPs per clip and the input spec of a "
                                   "model (all built-in models when MODEL is omitted).")
    p.add_argument("model", nargs="?", help="model name (see the list printed without it)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: model's)")
    p.add_argument("--size", type=int, default=None, help="crop size in pixels (default: model's)")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option, e.g. -o shift_div=4 -o attention=joint")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidcls", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each area registers its own subcommands (kept next to the code they call).
    add_info_parser(sub)
    from vidcls.data.commands import register as register_data

    register_data(sub)  # synth, data check, data info
    import vidcls.engine.commands

    vidcls.engine.commands.register(sub)  # train, eval, predict, demo
    import vidcls.deploy_commands

    vidcls.deploy_commands.register(sub)  # convert, export, stream
    import vidcls.bench.commands

    vidcls.bench.commands.register(sub)  # bench accuracy / cost / report, explain
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
