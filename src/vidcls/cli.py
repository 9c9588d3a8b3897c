"""The ``vidcls`` command. Thin: parses arguments, then calls the library."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidcls", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each area registers its own subcommands (kept next to the code they call).
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
