"""The one timing and peak-memory harness of vidcls: ``vidcls bench cost``, the accuracy
benchmark's per-model latency and every script in ``benchmarks/`` measure through it.

Timing (seconds from ``time.perf_counter``; process CPU seconds beside them, so a busy machine
shows as wall time well above CPU time):

* :func:`time_calls` -- one function, ``warmup`` untimed calls, then ``repeats`` timed ones,
  optionally stopped by a time budget.
* :func:`time_within` -- "as many runs as fit the budget, up to N": a first run that alone
  takes over a third of the budget is the only sample (no warm-up is affordable); otherwise it
  is the warm-up. ``vidcls bench cost`` reports the best of these runs, since on a shared machine
  the fastest run is the least disturbed one.
* :func:`interleaved` + :func:`paired_ratio` -- several functions timed once per round, round
  after round. On a shared CPU the machine's speed drifts while a benchmark runs; comparing two
  variants by the median of their per-round ratios makes those drifts cancel, because both
  sides of each ratio were measured seconds apart.
* :func:`timed` -- one call, its result and its seconds (a whole epoch, a whole loader pass).

Memory (KiB of resident memory, Linux ``/proc``; the fallbacks are named in each function):

* :func:`rss_kb` now; :func:`peak_rss_kb` since the process started (weights and model
  construction included: what ``vidcls bench cost`` reports as "peak memory");
* :func:`call_peak_kb` -- the growth of resident memory during one call (activation memory,
  weights excluded), for comparisons of two implementations in fresh processes.

:func:`native_bf16` says whether this CPU has bf16 arithmetic (otherwise bf16 is emulated and
slower than fp32): the capability line the benchmarks print.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Timings", "time_calls", "time_within", "interleaved", "paired_ratio", "timed",
           "rss_kb", "peak_rss_kb", "call_peak_kb", "native_bf16", "matmul_peak_gflops",
           "machine_line", "cpu_kind"]


# --------------------------------------------------------------------------- timing
@dataclass
class Timings:
    """Seconds of each timed call: wall clock and this process's CPU time."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def __len__(self) -> int:
        return len(self.wall)


def _timed_call(fn: Callable[[], Any], into: Timings) -> None:
    c = time.process_time()
    t = time.perf_counter()
    fn()
    into.wall.append(time.perf_counter() - t)
    into.cpu.append(time.process_time() - c)


def time_calls(fn: Callable[[], Any], repeats: int, *, warmup: int = 1,
               max_seconds: float | None = None, min_repeats: int = 1) -> Timings:
    """``warmup`` untimed calls, then up to ``repeats`` timed ones; with ``max_seconds``, stop
    once the budget (counted from the first warm-up) is spent and ``min_repeats`` are done."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    out = Timings()
    for _ in range(repeats):
        _timed_call(fn, out)
        if (max_seconds is not None and len(out) >= min_repeats
                and time.perf_counter() - start > max_seconds):
            break
    return out


def time_within(fn: Callable[[], Any], max_seconds: float, max_repeats: int = 5) -> Timings:
    """Runs of ``fn`` until ``max_seconds`` are used, at least one and at most ``max_repeats``
    timed; the first run is a warm-up unless it alone took more than a third of the budget
    (then it is the one sample)."""
    start = time.perf_counter()
    first = Timings()
    _timed_call(fn, first)
    if first.wall[0] > max_seconds / 3:
        return first
    out = Timings()
    while len(out) < max_repeats and time.perf_counter() - start < max_seconds:
        _timed_call(fn, out)
    return out


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1, *,
                max_seconds: float | None = None, min_repeats: int = 1
                ) -> dict[str, list[float]]:
    """Every function once per round, ``repeats`` rounds after ``warmup`` untimed ones;
    returns seconds per call, per function. With ``max_seconds``, rounds stop once the budget
    (counted from the first warm-up) is spent and ``min_repeats`` rounds are done."""
    start = time.perf_counter()
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for done in range(1, repeats + 1):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
        if (max_seconds is not None and done >= min_repeats
                and time.perf_counter() - start > max_seconds):
            break
    return times


def paired_ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``name``'s time / ``base``'s time in the same round."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds it took)``: one measurement of something too long to repeat."""
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


# --------------------------------------------------------------------------- memory
def rss_kb() -> int:
    """Current resident set size of this process in KiB (``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError):
        return 0


def peak_rss_kb() -> int:
    """Peak resident set size of this process since it started, in KiB (``ru_maxrss``)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux
    # The kernel folds its per-CPU RSS counters into ru_maxrss lazily, so it can trail the
    # current RSS by a few pages: the peak is at least what is resident now.
    return max(peak, rss_kb())


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(f"{field_name} is not in /proc/self/status")


def call_peak_kb(fn: Callable[[], Any]) -> tuple[int, str]:
    """Peak growth of resident memory during ``fn()`` in KiB, and how it was measured.

    Freed heap is returned to the OS first (``malloc_trim``), then the kernel's peak counter is
    reset (``/proc/self/clear_refs`` <- 5) and ``VmHWM`` read after the call (``"VmHWM"``).
    Where the counter cannot be reset the process's lifetime peak is used (``"ru_maxrss"``),
    so earlier peaks (model construction) may show. Run ``fn`` once before, so lazily created
    kernels and thread pools do not count, and run it in a fresh process with a fixed
    ``MALLOC_MMAP_THRESHOLD_`` so freed tensors leave the resident set at once.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    before = rss_kb()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM"
    except OSError:
        method = "ru_maxrss"
    fn()
    peak = _status_kb("VmHWM") if method == "VmHWM" else peak_rss_kb()
    return peak - before, method


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (``avx512_bf16`` / ``amx_bf16``); True when it
    cannot tell (say nothing then)."""
    if not os.path.exists("/proc/cpuinfo"):
        return True
    from vidcls.engine.runtime import native_bf16 as device_native_bf16

    return device_native_bf16("cpu")


def matmul_peak_gflops(dtype=None, sizes: tuple[int, ...] = (1024, 2048),
                       seconds: float = 1.0) -> float:
    """The matmul throughput this process reaches now (GFLOP/s, best of the square sizes
    ``sizes``, each timed for its share of ``seconds``): the ceiling every benchmark's ratio is
    read against, measured in the same run because CPUs of one size differ (AVX2 vs
    AVX-512-BF16 vs AMX) and shared machines drift. More than one size, because the fastest
    one differs per kind (AMX bf16: 1024 reaches about half of what 2048 does)."""
    import torch

    dtype = dtype or torch.float32
    best_rate = 0.0
    for n in sizes:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        a @ b  # warm-up
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < seconds / len(sizes):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        best_rate = max(best_rate, 2 * n ** 3 / best / 1e9)
    return best_rate


def cpu_kind() -> str:
    """The machine kind (``AMX``, ``AVX-512-BF16``, ``AVX-512``, ``AVX2``): see
    :func:`vidcls.ops.cpu_features.cpu_kind` (imported here lazily, as torch is)."""
    from vidcls.ops.cpu_features import cpu_kind as kind

    return kind()


def machine_line() -> str:
    """``CPU kind AVX2 (capability AVX2, native bf16: no), matmul fp32 210 / bf16 75 GFLOP/s,
    2 threads, torch ...``: the header every benchmark table carries."""
    import torch

    return (f"CPU kind {cpu_kind()} (capability {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16: {'yes' if native_bf16() else 'no'}), matmul fp32 "
            f"{matmul_peak_gflops():.0f} / bf16 {matmul_peak_gflops(torch.bfloat16):.0f} GFLOP/s, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}")
