"""Benchmarks that back the article's claims with numbers anyone can rerun.

* :mod:`~vidcls.repro.experiments` and :mod:`~vidcls.repro.accuracy` -- ``vidcls bench
  accuracy``: the accuracy patterns of the TSM and TimeSformer papers (TSN vs TSM, shift
  proportion and placement, online vs offline shift, attention schemes) trained on the built-in
  synthetic datasets, several seeds per cell, results appended to a JSON-lines file so an
  interrupted run resumes.
* :mod:`~vidcls.repro.cost` -- ``vidcls bench cost``: parameters, GFLOPs, latency and peak
  memory of every model at its reference input, fp32 and bf16, next to the papers' numbers.
* :mod:`~vidcls.repro.examples` -- the explain step: heat maps of the trained models and how
  much of the heat falls on the moving object, written as result files.
* :mod:`~vidcls.repro.report` -- ``docs/results.md`` rendered from those files only, with
  :mod:`~vidcls.repro.summary`, :mod:`~vidcls.repro.verdicts`, :mod:`~vidcls.repro.tables`
  and :mod:`~vidcls.repro.plots`.
* :mod:`~vidcls.repro.timing` (the one timing and peak-memory harness, also used by
  ``benchmarks/``) and :mod:`~vidcls.repro.runner` (the one subprocess job pool, also used by
  the demo).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["write_results", "result_files", "DEFAULT_ACCURACY", "DEFAULT_COST"]

# Where `vidcls bench accuracy` (preset "small") and `vidcls bench cost` write by default.
DEFAULT_ACCURACY = "runs/bench/accuracy-small/results.jsonl"
DEFAULT_COST = "runs/bench/cost.json"


def result_files(accuracy: str | Path | None = None, cost: str | Path | None = None
                 ) -> tuple[Path | None, Path | None]:
    """The accuracy and cost result files a report renders from: ``(accuracy, cost)``.

    With neither given, the default locations (``DEFAULT_ACCURACY``, ``DEFAULT_COST``) are
    used, each only if it exists (``None`` if not), so a report can show the benchmark that
    was run without the other; when neither exists there is nothing to report. When one is
    given, both files (the other one at its default location) must exist. A missing file
    raises ``FileNotFoundError`` naming the command that writes it.
    """
    acc_path = Path(accuracy or DEFAULT_ACCURACY)
    cost_path = Path(cost or DEFAULT_COST)
    if accuracy is None and cost is None:  # defaults: use what exists
        if not acc_path.is_file() and not cost_path.is_file():
            raise FileNotFoundError(f"neither {acc_path} nor {cost_path} exists (run `vidcls "
                                    f"bench accuracy` and `vidcls bench cost` first)")
        return (acc_path if acc_path.is_file() else None,
                cost_path if cost_path.is_file() else None)
    for command, path in (("accuracy", acc_path), ("cost", cost_path)):
        if not path.is_file():
            raise FileNotFoundError(f"{command} results {str(path)!r} not found (run `vidcls "
                                    f"bench {command}` first)")
    return acc_path, cost_path


def write_results(accuracy: str | Path | None, cost: str | Path | None,
                  docs_dir: str | Path = "docs", *, explain: bool = True) -> Path:
    """``vidcls bench report``: refresh the explain images and scores when asked (this step
    loads the kept checkpoints), then render ``docs_dir/results.md`` from the result files
    (``None``, or a cost file that does not exist, leaves that part out; :func:`result_files`
    picks the files). Returns the page's path."""
    from vidcls.repro.examples import write_examples
    from vidcls.repro.report import render_results

    if explain and accuracy:
        write_examples(accuracy, docs_dir)
    return render_results(accuracy, cost, docs_dir)
