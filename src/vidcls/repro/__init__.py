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

__all__ = ["write_results"]


def write_results(accuracy: str | Path | None, cost: str | Path | None,
                  docs_dir: str | Path = "docs", *, explain: bool = True) -> Path:
    """``vidcls bench report``: refresh the explain images and scores when asked (this step
    loads the kept checkpoints), then render ``docs_dir/results.md`` from the result files.
    Returns the page's path."""
    from vidcls.repro.examples import write_examples
    from vidcls.repro.report import render_results

    if explain and accuracy:
        write_examples(accuracy, docs_dir)
    return render_results(accuracy, cost, docs_dir)
