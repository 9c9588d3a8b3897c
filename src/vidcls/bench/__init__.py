"""Benchmarks that back the article's claims with numbers anyone can rerun.

* :mod:`vidcls.bench.accuracy` — ``vidcls bench accuracy``: the accuracy patterns of the TSM and
  TimeSformer papers (TSN vs TSM, shift proportion and placement, online vs offline shift,
  attention schemes) trained on the built-in synthetic datasets, several seeds per cell,
  results appended to a JSON-lines file so an interrupted run resumes.
* :mod:`vidcls.bench.cost` — ``vidcls bench cost``: parameters, GFLOPs, latency and peak memory
  of every model at its reference input, fp32 and bf16, next to the papers' numbers.
* :mod:`vidcls.bench.report` — tables and matplotlib plots from those files, and
  ``docs/results.md``.
"""
