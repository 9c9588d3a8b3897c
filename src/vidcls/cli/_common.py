"""What every ``vidcls`` command shares: the one-line error, ``KEY=VALUE`` options and config
overrides that may follow the options."""
from __future__ import annotations

import argparse
import sys

import yaml

OVERRIDES = "overrides"  # the dest of add_overrides; CommandParser looks for it


def fail(command: str, err: BaseException) -> int:
    """Print ``vidcls COMMAND: error: MESSAGE`` on stderr and return exit status 2.

    Expected failures (a bad value, a missing file) are the user's to fix, so they get one line
    that names the value, not a traceback."""
    print(f"vidcls {command}: error: {err}", file=sys.stderr)
    return 2


def add_model_source(parser: argparse.ArgumentParser, *, required: bool = True,
                     what: str = "checkpoint directory") -> None:
    """``--checkpoint DIR`` or ``--model NAME`` (a published model, see ``vidcls models``), and
    ``--offline``; :func:`model_source` turns them into a checkpoint directory."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--checkpoint", help=what)
    group.add_argument("--model", metavar="NAME",
                       help="a published model by name (vidcls models lists them): "
                            "downloaded, checked and converted on first use, then cached")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="with --model: use the cache only (also VIDCLS_OFFLINE=1)")


def add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision``: the inference paths' choice of arithmetic (see
    ``vidcls.engine.runtime.resolve_precision``; the names are repeated here so the parser
    imports no torch)."""
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto (default): bf16 where the hardware computes it natively "
                             "(AVX-512-BF16/AMX CPUs, CUDA), else fp32")


def model_source(args: argparse.Namespace, *, progress: bool = True) -> str | None:
    """The checkpoint directory of ``--checkpoint`` / ``--model`` (None when neither was given).

    Raises the zoo's one-line errors (unknown name, offline and not cached, download failed)."""
    if getattr(args, "model", None):
        from vidcls.zoo import checkpoint_dir

        return str(checkpoint_dir(args.model, offline=args.offline, progress=progress))
    return getattr(args, "checkpoint", None)


def parse_options(pairs: list[str], example: str) -> dict:
    """``["shift_div=4", "attention=joint"]`` -> ``{"shift_div": 4, "attention": "joint"}``.

    Values are read as YAML, so numbers, booleans and lists arrive typed. A pair that is not
    KEY=VALUE ends the command with ``SystemExit(2)`` (one line on stderr, the status of every
    usage error) showing ``example`` (e.g. ``"shift_div=4"``)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"vidcls: error: option {pair!r} is not KEY=VALUE (e.g. {example})",
                  file=sys.stderr)
            raise SystemExit(2)
        options[key] = yaml.safe_load(value)
    return options


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Add the ``KEY=VALUE ...`` config overrides of ``train`` and ``eval``; under a
    :class:`CommandParser` they may also come after options (``vidcls train c.yaml
    --no-progress train.epochs=5``)."""
    parser.add_argument(OVERRIDES, nargs="*", metavar="KEY=VALUE", help="config overrides")


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, except that ``KEY=VALUE`` words left after the options join the
    command's overrides (:func:`add_overrides`).

    argparse fills a ``nargs="*"`` positional with the words before the first option only and
    returns later ones as unrecognised; other unrecognised words stay an error of
    ``parse_args``. Commands without overrides are unaffected. Subparsers inherit the class."""

    def error(self, message: str):
        """argparse's usage errors as one line (the usage text is one ``--help`` away)."""
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and hasattr(namespace, OVERRIDES):
            late = [a for a in extras if "=" in a and not a.startswith("-")]
            setattr(namespace, OVERRIDES, [*getattr(namespace, OVERRIDES), *late])
            extras = [a for a in extras if a not in late]
        return namespace, extras
