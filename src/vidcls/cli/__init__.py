"""The ``vidcls`` command: one table of commands, one parser, one entry point.

``COMMANDS`` is the only list of commands (as litgpt's ``__main__.py`` maps names to functions
in one place): command name -> (the ``vidcls.cli`` module that implements it, the one-line help
``vidcls --help`` prints). A command module has one entry point, ``register(subparsers)``: it adds
its commands with ``subparsers.add_parser(name, description=...)`` (the help comes from this
table, so it is written once) and ``set_defaults(func=...)``; ``func(args)`` returns the exit
status. Command modules import only the standard library and :mod:`vidcls.cli._common` at module
level; the library (and torch) is imported inside the command functions, so ``vidcls --help`` and
argument errors stay fast (building the parser imports only torch-free library modules:
``vidcls.convert.formats`` for the ``--from`` names, ``vidcls.repro`` for the default result
paths; ``tests/cli/test_commands.py`` checks that no torch is imported).
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

from vidcls.cli import bench, data, demo, deploy, explain, info, models, predict, serve, train
from vidcls.cli._common import CommandParser

# In the order `vidcls --help` lists them; a module's commands stay together.
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "info": (info, "parameters, GFLOPs per clip and input spec of a model"),
    "models": (models, "published checkpoints that --model NAME downloads and converts"),
    "synth": (data, "write a built-in synthetic video dataset"),
    "data": (data, "inspect and check datasets"),
    "train": (train, "train a model from a YAML config (works under torchrun)"),
    "eval": (train, "top-1/top-5/mean class accuracy, confusion matrix, per-video predictions"),
    "predict": (predict, "class names and probabilities for video files"),
    "demo": (demo, "synthetic data -> TSN vs TSM -> eval -> predict -> stream"),
    "convert": (deploy, "convert a published checkpoint into a vidcls checkpoint"),
    "export": (deploy, "export a checkpoint to ONNX (offline or online TSM)"),
    "stream": (deploy, "classify a live stream frame by frame (online TSM)"),
    "serve": (serve, "HTTP API, browser page and live WebSocket stream for models"),
    "bench": (bench, "accuracy and cost benchmarks behind docs/results.md"),
    "explain": (explain, "heat maps of where a model looks in a video"),
}

DESCRIPTION = "The ``vidcls`` command. Thin: parses arguments, then calls the library."


class TableSubparsers:
    """What a command module's ``register`` receives: ``add_parser`` of argparse's subparsers,
    restricted to the commands ``COMMANDS`` gives that module and with the table's help, so a
    command can neither be added without a table entry nor get a second help text."""

    def __init__(self, subparsers, module: ModuleType):
        self._subparsers = subparsers
        self._module = module

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        module, help_text = COMMANDS.get(name, (None, None))
        if module is not self._module:
            raise ValueError(f"{self._module.__name__} adds command {name!r}, which COMMANDS "
                             f"does not give it (add it to vidcls.cli.COMMANDS)")
        return self._subparsers.add_parser(name, help=help_text, **kwargs)


def command_modules() -> list[ModuleType]:
    """The modules of ``COMMANDS``, each once, in table order."""
    return list(dict.fromkeys(module for module, _ in COMMANDS.values()))


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="vidcls", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        module.register(TableSubparsers(subparsers, module))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BrokenPipeError:  # `vidcls models | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
