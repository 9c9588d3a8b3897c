"""result_files: which accuracy and cost results ``vidcls bench report`` renders from."""
from __future__ import annotations

from pathlib import Path

import pytest

from vidcls.repro import DEFAULT_ACCURACY, DEFAULT_COST, result_files


def _write(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}\n")
    return path


def test_defaults_use_the_files_that_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(DEFAULT_COST)
    assert result_files() == (None, Path(DEFAULT_COST))
    _write(DEFAULT_ACCURACY)
    assert result_files() == (Path(DEFAULT_ACCURACY), Path(DEFAULT_COST))


def test_given_files_are_used_as_they_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    acc, cost = _write(tmp_path / "a.jsonl"), _write(tmp_path / "c.json")
    assert result_files(acc, cost) == (acc, cost)
    _write(DEFAULT_COST)  # one given: the other comes from its default location
    assert result_files(acc) == (acc, Path(DEFAULT_COST))


def test_missing_results_name_the_command_that_writes_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"neither .*results.jsonl nor .*cost.json "
                                                r"exists \(run `vidcls bench accuracy`"):
        result_files()
    with pytest.raises(FileNotFoundError, match=r"accuracy results 'nope.jsonl' not found "
                                                r"\(run `vidcls bench accuracy` first\)"):
        result_files("nope.jsonl", _write("c.json"))
    with pytest.raises(FileNotFoundError, match=r"cost results .*cost.json' not found "
                                                r"\(run `vidcls bench cost` first\)"):
        result_files(_write("a.jsonl"))  # the default cost file does not exist
