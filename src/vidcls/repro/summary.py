"""Accuracy results per cell: the seeds of one (experiment, kind, label) cell -> mean ± std.

Everything the tables, plots and verdicts of ``docs/results.md`` say about accuracy is computed
from :func:`summarize`'s cells, so they cannot disagree.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

METRICS = ("top1", "pair_acc", "within_pair_acc", "mean_class_acc")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(records: list[dict]) -> dict[tuple[str, str, str], dict]:
    """``(experiment, kind, label) -> {n, seeds, <metric>: (mean, std), <metric>_values, ...}``.

    A seed counted twice (e.g. a rerun appended to the file) keeps its last line.
    """
    cells: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in records:
        cells[(r["experiment"], r["kind"], r["label"])][r["seed"]] = r
    out = {}
    for key, by_seed in cells.items():
        rs = [by_seed[s] for s in sorted(by_seed)]
        entry: dict[str, Any] = {"n": len(rs), "seeds": sorted(by_seed), "records": rs}
        for m in METRICS + ("params", "gflops", "latency_ms", "cpu_seconds", "seconds"):
            vals = [r.get(m) for r in rs if r.get(m) is not None]
            entry[m] = mean_std(vals)
            entry[f"{m}_values"] = vals
        for extra in ("shift_fraction", "place"):
            if extra in rs[0]:
                entry[extra] = rs[0][extra]
        out[key] = entry
    return out


def cell(summary: dict, experiment: str, kind: str, label: str) -> dict | None:
    """One cell of :func:`summarize`'s result, None when it was not run."""
    return summary.get((experiment, kind, label))


def by_start(records: list[dict]) -> dict[str, dict]:
    """:func:`summarize` per start: ``{"scratch": summary, "pretrained": summary}``, only the
    starts the records have, in that order (a line written before starts existed is from
    scratch). Summarising each start separately keeps their cells apart."""
    from vidcls.repro.experiments import STARTS

    out = {}
    for start in STARTS:
        rs = [r for r in records if r.get("start", "scratch") == start]
        if rs:
            out[start] = summarize(rs)
    return out


def motion_kind(summary: dict, experiment: str, default: str = "temporal") -> str:
    """The temporal dataset an experiment ran on (``temporal``, or ``objects`` where what moves
    matters too): its kind other than ``appearance``."""
    kinds = sorted({k for e, k, _ in summary if e == experiment and k != "appearance"})
    return kinds[0] if kinds else default


def num_classes(records: list[dict], default: int = 4) -> int:
    """Classes of the runs' dataset (chance = 100 / classes), from the first record's recipe."""
    if not records:
        return default
    return records[0].get("recipe", {}).get("data", {}).get("num_classes", default)
