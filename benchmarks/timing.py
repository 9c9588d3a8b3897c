"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``).

On a shared CPU the speed of the machine drifts while a benchmark runs. Timing every variant
once per round, round after round, and comparing variants by the median of their per-round
ratios makes those drifts cancel: both sides of a ratio were measured seconds apart.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int
                ) -> dict[str, list[float]]:
    """Every function once per round, ``repeats`` rounds (after ``warmup`` untimed ones);
    returns seconds per call, per function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``name``'s time / ``base``'s time in the same round."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))
