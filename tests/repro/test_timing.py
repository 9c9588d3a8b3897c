"""The timing and memory harness (:mod:`vidcls.repro.timing`): how many calls each helper makes
and times, in which order, when a time budget stops it, and that memory readings see an
allocation."""
from __future__ import annotations

import time

import numpy as np
import torch
import pytest

from vidcls.repro import timing


class Counter:
    def __init__(self, sleep: float = 0.0, log: list | None = None, name: str = ""):
        self.calls, self.sleep, self.log, self.name = 0, sleep, log, name

    def __call__(self):
        self.calls += 1
        if self.log is not None:
            self.log.append(self.name)
        if self.sleep:
            time.sleep(self.sleep)


def test_time_calls_warms_up_then_times_each_call():
    fn = Counter(sleep=0.01)
    t = timing.time_calls(fn, 4, warmup=2)
    assert fn.calls == 6 and len(t) == 4 and len(t.cpu) == 4
    assert all(w >= 0.009 for w in t.wall)
    assert t.best == min(t.wall) and t.best <= t.median <= max(t.wall)
    assert all(c < w for c, w in zip(t.cpu, t.wall))  # sleeping costs no CPU


def test_time_calls_stops_when_the_budget_is_spent():
    fn = Counter(sleep=0.05)
    t = timing.time_calls(fn, 1000, warmup=1, max_seconds=0.2, min_repeats=2)
    assert 2 <= len(t) <= 5 and fn.calls == len(t) + 1
    t = timing.time_calls(Counter(sleep=0.05), 1000, warmup=0, max_seconds=0.0, min_repeats=3)
    assert len(t) == 3  # at least min_repeats, even over budget


def test_time_within_warms_up_unless_one_run_eats_the_budget():
    fast = Counter()
    t = timing.time_within(fast, max_seconds=5.0, max_repeats=5)
    assert len(t) == 5 and fast.calls == 6  # warm-up + 5, well inside the budget
    slow = Counter(sleep=0.2)
    t = timing.time_within(slow, max_seconds=0.3)  # the first run alone > 1/3 of the budget
    assert len(t) == 1 and slow.calls == 1 and t.wall[0] >= 0.19
    medium = Counter(sleep=0.05)
    t = timing.time_within(medium, max_seconds=0.3, max_repeats=100)
    assert 1 <= len(t) <= 6 and medium.calls == len(t) + 1


def test_interleaved_times_every_function_once_per_round():
    log: list[str] = []
    fns = {name: Counter(log=log, name=name) for name in ("a", "b", "c")}
    times = timing.interleaved(fns, 3, warmup=1)
    assert log == ["a", "b", "c"] * 4  # one warm-up round, then 3 timed rounds, in turn
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    slow = {"x": Counter(sleep=0.05), "y": Counter(sleep=0.05)}
    times = timing.interleaved(slow, 1000, warmup=0, max_seconds=0.25, min_repeats=2)
    assert 2 <= len(times["x"]) <= 4 and len(times["x"]) == len(times["y"])


def test_paired_ratio_is_the_median_of_per_round_ratios():
    times = {"a": [2.0, 4.0, 6.0], "b": [1.0, 1.0, 2.0]}
    assert timing.paired_ratio(times, "a", "b") == 3.0  # rounds: 2, 4, 3
    assert timing.paired_ratio(times, "b", "b") == 1.0


def test_timed_returns_the_result_and_its_seconds():
    value, seconds = timing.timed(lambda: time.sleep(0.02) or 7)
    assert value == 7 and seconds >= 0.019


def test_memory_readings_see_an_allocation():
    assert timing.rss_kb() > 10_000  # python + torch + numpy: tens of MiB
    rss = timing.rss_kb()  # read first: RSS may grow between the two reads
    assert timing.peak_rss_kb() >= rss
    size = 64 * 2**20

    def allocate():
        a = np.ones(size // 8)  # written, so resident
        return float(a[-1])

    timing.call_peak_kb(allocate)  # once first, as the docstring asks
    delta, method = timing.call_peak_kb(allocate)
    assert method in ("VmHWM", "ru_maxrss")
    if method == "ru_maxrss":
        pytest.skip("this kernel does not let a process reset its peak-RSS counter")
    assert 0.8 * size / 1024 < delta < 4 * size / 1024


def test_native_bf16_is_a_yes_or_no():
    assert timing.native_bf16() in (True, False)


def test_cpu_kind_from_flags(monkeypatch):
    """The machine kind benchmark sections are kept per comes from the CPU flags (torch says
    AVX512 for AVX-512, AVX-512-BF16 and AMX alike)."""
    from vidcls.ops import cpu_features

    for flags, kind in (({"avx2", "avx512f", "amx_bf16", "avx512_bf16"}, "AMX"),
                        ({"avx2", "avx512f", "avx512_bf16"}, "AVX-512-BF16")):
        monkeypatch.setattr(cpu_features, "cpu_flags", lambda f=flags: frozenset(f))
        assert cpu_features.cpu_kind() == kind
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert cpu_features.cpu_kind() == "AVX2"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert cpu_features.cpu_kind() == "AVX-512"
    assert timing.cpu_kind() == "AVX-512"


def test_matmul_peak_is_the_best_of_its_sizes():
    peak = timing.matmul_peak_gflops(sizes=(64, 128), seconds=0.05)
    assert peak > 0
