"""The ``vidcls`` command table and the helpers every command shares (vidcls.cli._common)."""
from __future__ import annotations

import argparse

import pytest

from vidcls.cli import COMMANDS, TableSubparsers, build_parser, command_modules, main
from vidcls.cli._common import CommandParser, add_overrides, fail, parse_options


class _Recorder:
    """Stands in for argparse's subparsers; remembers the names a module adds."""

    def __init__(self):
        self.names = []
        self._subparsers = argparse.ArgumentParser().add_subparsers()

    def add_parser(self, name, **kwargs):
        self.names.append(name)
        return self._subparsers.add_parser(name, **kwargs)


def test_help_lists_every_table_command_in_table_order(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert listed == list(COMMANDS)
    words = " ".join(out.split())  # undo argparse's line wrapping
    for name, (_, help_text) in COMMANDS.items():
        assert f"{name} {help_text}" in words


def test_each_module_registers_exactly_its_table_commands():
    assert {m for m, _ in COMMANDS.values()} == set(command_modules())
    for module in command_modules():
        recorder = _Recorder()
        module.register(recorder)
        assert recorder.names == [n for n, (m, _) in COMMANDS.items() if m is module], module
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)


def test_a_command_outside_the_table_is_refused():
    table = TableSubparsers(argparse.ArgumentParser().add_subparsers(), COMMANDS["train"][0])
    with pytest.raises(ValueError, match="'fly'.*COMMANDS"):
        table.add_parser("fly")
    with pytest.raises(ValueError, match="'info'"):  # in the table, but another module's
        table.add_parser("info")
    assert table.add_parser("eval").prog.endswith("eval")


def test_fail_prints_one_line_and_returns_2(capsys):
    assert fail("data check", FileNotFoundError("video 'x.mp4' not found")) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "vidcls data check: error: video 'x.mp4' not found\n"


def test_parse_options_reads_yaml_typed_values():
    assert parse_options([], example="a=1") == {}
    assert parse_options(["shift_div=4", "attention=joint", "flag=true", "ratio=0.5",
                          "sizes=[1, 2]", "path=/a=b", "empty="], example="shift_div=4") == {
        "shift_div": 4, "attention": "joint", "flag": True, "ratio": 0.5, "sizes": [1, 2],
        "path": "/a=b", "empty": None}


@pytest.mark.parametrize("pair", ["shift_div", "=4", ""])
def test_parse_options_rejects_what_is_not_key_value(pair, capsys):
    with pytest.raises(SystemExit) as info:
        parse_options(["ok=1", pair], example="split_id=2")
    assert info.value.code == 2  # a usage error, like argparse's
    assert capsys.readouterr().err == \
        f"vidcls: error: option {pair!r} is not KEY=VALUE (e.g. split_id=2)\n"


def _parser():
    parser = CommandParser(prog="vidcls")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train")
    train.add_argument("config")
    add_overrides(train)
    train.add_argument("--no-progress", action="store_true")
    sub.add_parser("plain").add_argument("--flag", action="store_true")
    return parser


def test_overrides_may_come_before_and_after_options():
    args = _parser().parse_args(["train", "c.yaml", "a=1", "--no-progress", "b.c=2", "d=x=y"])
    assert args.config == "c.yaml" and args.no_progress
    assert args.overrides == ["a=1", "b.c=2", "d=x=y"]
    assert _parser().parse_args(["train", "c.yaml"]).overrides == []
    # the real parser does the same
    args = build_parser().parse_args(["eval", "c.yaml", "--checkpoint", "k", "x=1", "--json",
                                      "y=2"])
    assert args.overrides == ["x=1", "y=2"] and args.json


@pytest.mark.parametrize("argv, unrecognized", [
    (["train", "c.yaml", "--no-progress", "word"], "word"),
    (["train", "c.yaml", "a=1", "--bogus=3"], "--bogus=3"),
    (["plain", "a=1"], "a=1"),  # a command without overrides takes none
])
def test_other_leftover_words_stay_errors(argv, unrecognized, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == 2
    assert f"vidcls: error: unrecognized arguments: {unrecognized}" in capsys.readouterr().err


def test_building_the_parser_imports_no_torch():
    """``vidcls --help`` and argument errors stay fast (~0.2 s, not the ~2 s of torch):
    command modules load the library inside their command functions only."""
    import subprocess
    import sys

    code = ("import sys; from vidcls.cli import build_parser; build_parser(); "
            "heavy = sorted(m for m in ('torch', 'numpy', 'av') if m in sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
