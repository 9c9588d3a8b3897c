"""``vidcls bench cost``: parameters, GFLOPs, latency and peak memory, measured.

For every model at its reference input (TSN/TSM 8x224, TimeSformer 8x224, -HR 16x448, -L 96x224,
each TimeSformer with all five attention schemes), in fp32 and bf16:

* parameters and GFLOPs per clip come from the ``meta`` device (:func:`vidcls.info.model_info`:
  no memory, no arithmetic), next to the numbers the papers report;
* latency (batch 1, inference; the best of up to 5 runs after a warm-up, since on a shared
  machine the fastest run is the least disturbed one: :func:`vidcls.repro.timing.time_within`)
  and peak memory are measured in a fresh subprocess per measurement (``ru_maxrss``; the
  process's resident size before the forward pass is reported too, so the activation memory is
  the difference);
* where a whole forward pass would take too long on this machine, one encoder block is timed on
  the full token grid and the clip latency is ``embedding + depth x block`` ("per block"); where
  even one block would exceed ``max_seconds``, the block time is extrapolated from the largest
  measured frame count of the same variant in proportion to FLOPs ("extrapolated"). Every row
  says which of the three it is.

Also: the comparisons per patch token of each attention scheme (the paper's ``NF+1``,
``N+F+2``, ... and the count implied by our partitions), the TSM paper's shift-latency overhead
(TSN vs TSM with 1/4 of the channels moved vs all of them, in-place and residual, timed in turn
in one process), and TimeSformer block latency vs frames (8 -> 96) per scheme, all written to
``cost.json``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from vidcls.repro.experiments import ATTENTIONS
from vidcls.repro.runner import run_json
from vidcls.repro.timing import interleaved, paired_ratio, peak_rss_kb, rss_kb, time_within

TIMESFORMERS = {"timesformer_base": "TimeSformer (8x224)",
                "timesformer_hr": "TimeSformer-HR (16x448)",
                "timesformer_large": "TimeSformer-L (96x224)"}
SWEEP_FRAMES = (8, 16, 32, 64, 96)

# What the papers report. TSM: Lin et al. 2019 (Tables 2-3: TSN and TSM ResNet-50, 8 frames,
# 33 G FLOPs, 24.3 M parameters). TimeSformer: Bertasius et al. 2021, Table 1 (parameters per
# attention scheme) and Table 3 (inference TFLOPs for 3 views: 0.59 / 5.11 / 7.14 for
# TimeSformer / -HR / -L, i.e. 196 / 1703 / 2380 GFLOPs per view).
PAPER: dict[tuple[str, str], dict[str, float]] = {
    ("tsn_resnet50", ""): {"gflops": 33.0, "params_m": 24.3},
    ("tsm_resnet50", ""): {"gflops": 33.0, "params_m": 24.3},
    ("timesformer_base", "divided"): {"gflops": 196.0, "params_m": 121.4},
    ("timesformer_hr", "divided"): {"gflops": 1703.0, "params_m": 121.4},
    ("timesformer_large", "divided"): {"gflops": 2380.0, "params_m": 121.4},
    ("timesformer_base", "space"): {"params_m": 85.9},
    ("timesformer_base", "joint"): {"params_m": 85.9},
    ("timesformer_base", "local_global"): {"params_m": 121.4},
    ("timesformer_base", "axial"): {"params_m": 156.8},
}
# TSM paper: moving all channels costs +13.7 % latency on CPU (naive in-place shift);
# 1/8 each way keeps the overhead near 3 %.
PAPER_SHIFT_OVERHEAD = {"all channels": 13.7, "1/4 of the channels": 3.0}

# The paper's comparison counts per patch (N patches per frame, F frames; cls included).
PAPER_COMPARISONS = {"space": "N+1", "joint": "NF+1", "divided": "N+F+2",
                     "local_global": "NF/4+NF/8+1 (ours; the paper gives no count)",
                     "axial": "F+W+H+1 (ours; the paper gives no count)"}


# --------------------------------------------------------------------------- what to measure
def model_rows(quick: bool = False) -> list[dict]:
    """The models of the cost table: name, options, label, frames, crop size."""
    from vidcls.models import list_models

    rows = []
    cnns = [m for m in list_models() if m.startswith(("tsn_", "tsm_"))]
    if quick:
        cnns = ["tsn_resnet50", "tsm_resnet50"]
    for name in cnns:
        rows.append(dict(model=name, options={}, label=name, frames=8, size=224))
    bases = ["timesformer_base"] if quick else list(TIMESFORMERS)
    for name in bases:
        frames, size = {"timesformer_base": (8, 224), "timesformer_hr": (16, 448),
                        "timesformer_large": (96, 224)}[name]
        for att in ATTENTIONS:
            rows.append(dict(model=name, options={"attention": att}, label=f"{name} {att}",
                             frames=frames, size=size, attention=att))
    return rows


def comparisons_per_token(attention: str, num_frames: int, grid: tuple[int, int]) -> int:
    """Keys each patch token's query is compared with, summed over the scheme's stages, as our
    :mod:`vidcls.models.attention` partitions define them (cls counted where it takes part)."""
    from vidcls.models.attention import VARIANT_STAGES

    stages, last = VARIANT_STAGES[attention]
    T = 1 if attention == "space" else num_frames  # "space": every frame is its own clip
    total = 0
    for partition in [p for _, p in stages] + [last]:
        plans, _ = partition.plan(T, *grid)
        # length of a group = product of the sequence factors of the three axes
        seq = 1
        for outer, inner, outer_is_group in plans:
            seq *= inner if outer_is_group else outer
        total += seq
    return total + 1  # the cls token joins the last stage


def paper_comparisons(attention: str, num_frames: int, grid: tuple[int, int]) -> int:
    N, F = grid[0] * grid[1], num_frames
    h, w = grid
    return {"space": N + 1, "joint": N * F + 1, "divided": N + F + 2,
            "local_global": N * F // 4 + N * F // 8 + 1, "axial": F + w + h + 1}[attention]


# --------------------------------------------------------------------------- the worker
def measure(spec: dict) -> dict:
    """One measurement (runs inside the worker process): latency and peak memory of a whole
    model (``mode="full"``) or of its embedding + one block (``mode="block"``)."""
    import torch

    from vidcls.models import create_model

    torch.set_num_threads(int(spec.get("threads") or os.cpu_count() or 1))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[spec["dtype"]]
    torch.manual_seed(0)
    model = create_model(spec["model"], num_classes=400, num_frames=spec["frames"],
                         **spec["options"]).eval().to(dtype)
    T, S = spec["frames"], spec["size"]
    x = torch.randn(1, T, 3, S, S, dtype=dtype)
    out: dict[str, Any] = {"mode": spec["mode"], "threads": torch.get_num_threads()}
    with torch.inference_mode():
        if spec["mode"] == "full":
            base = rss_kb()
            times = time_within(lambda: model(x), spec["max_seconds"])
        else:
            # Embedding (patch conv) and one encoder block on the full token grid; inference
            # frees each block's activations before the next, so the model's peak is the
            # weights plus one block's peak.
            D, p = model.embed_dim, model.patch_size
            grid = (S // p, S // p)
            N = grid[0] * grid[1]
            if getattr(model, "attention", None) == "space":
                cls = torch.randn(T, 1, D, dtype=dtype)
                tokens = torch.randn(T, 1, N, D, dtype=dtype)
            else:
                cls = torch.randn(1, 1, D, dtype=dtype)
                tokens = torch.randn(1, T, N, D, dtype=dtype)
            frames = x.reshape(T, 3, S, S)  # (B*T, 3, H, W)
            embed = time_within(lambda: model.patch_embed(frames), spec["max_seconds"] / 4)
            base = rss_kb()
            times = time_within(lambda: model.blocks[0](cls, tokens, grid), spec["max_seconds"])
            out["embed_s"] = embed.best
            out["depth"] = len(model.blocks)
    peak = peak_rss_kb()
    out.update(times=times.wall, median_s=times.median, min_s=times.best,
               base_rss_mb=base / 1024,
               peak_rss_mb=peak / 1024, activation_mb=max(0.0, (peak - base) / 1024))
    return out


SHIFT_VARIANTS = (
    ("TSN (no shift)", "tsn_resnet50", {}),
    ("TSM, 1/4 of the channels, residual", "tsm_resnet50", {}),
    ("TSM, 1/4 of the channels, in-place", "tsm_resnet50", {"shift_place": "inplace"}),
    ("TSM, all channels, residual", "tsm_resnet50", {"shift_div": 2}),
    ("TSM, all channels, in-place", "tsm_resnet50", {"shift_div": 2, "shift_place": "inplace"}),
)


def measure_shift_overhead(spec: dict) -> dict:
    """TSN vs TSM ResNet-50 latency, the models timed in turn for several rounds (so a busy
    machine slows them alike): the shift's data movement is TSM's only extra cost."""
    import torch

    from vidcls.models import create_model

    torch.set_num_threads(int(spec.get("threads") or os.cpu_count() or 1))
    torch.manual_seed(0)
    models = [(label, create_model(name, num_classes=400, num_frames=8, **opts).eval())
              for label, name, opts in SHIFT_VARIANTS]
    x = torch.randn(1, 8, 3, spec.get("size", 224), spec.get("size", 224))
    with torch.inference_mode():
        # one warm-up each; at least 3 rounds, more while the budget lasts
        times = interleaved({label: (lambda m=m: m(x)) for label, m in models},
                            spec.get("rounds", 7), warmup=1,
                            max_seconds=spec.get("max_seconds", 60), min_repeats=3)
    tsn = SHIFT_VARIANTS[0][0]
    best = {k: min(v) for k, v in times.items()}
    return {"times": times, "min_s": best,
            "overhead_pct": {k: 100 * (v / best[tsn] - 1) for k, v in best.items()},
            # per round, each model relative to TSN in the same round; the median of those
            "paired_overhead_pct": {k: 100 * (paired_ratio(times, k, tsn) - 1) for k in times},
            "threads": torch.get_num_threads(), "rounds": len(times[tsn])}


def _run_worker(spec: dict, timeout: float) -> dict:
    """Run :func:`measure` in a fresh process (clean peak-memory reading)."""
    return run_json([sys.executable, "-m", "vidcls.repro.cost", "--worker", json.dumps(spec)],
                    timeout)


# --------------------------------------------------------------------------- the benchmark
def _flops_info(row: dict, frames: int | None = None) -> dict:
    from vidcls.info import model_info

    return model_info(row["model"], num_frames=frames or row["frames"], size=row["size"],
                      **row["options"])


def _estimate(rate_gflops_s: float | None, gflops: float) -> float | None:
    return gflops / rate_gflops_s if rate_gflops_s else None


DTYPES = ("fp32", "bf16")  # what measure() can run


def _check_settings(dtypes: tuple[str, ...], max_seconds: float) -> None:
    """Refuse settings the benchmark cannot use, before it spends minutes on the others."""
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise ValueError(f"unknown dtype(s) {', '.join(bad)}; use {', '.join(DTYPES)}")
    if max_seconds <= 0:  # the command's --max-seconds
        raise ValueError(f"--max-seconds must be > 0, got {max_seconds}")


def run_cost(out_dir: str | Path = "runs/bench", *, quick: bool = False,
             max_seconds: float = 30.0, dtypes: tuple[str, ...] = ("fp32", "bf16"),
             threads: int | None = None, sweep: bool = True, full_gflops: float = 250.0,
             verbose: bool = True) -> Path:
    """Measure the cost table (and the latency-vs-frames sweep); writes ``cost.json``.

    ``max_seconds`` bounds each measurement; models above ``full_gflops`` GFLOPs (per clip) are
    timed per block. ``quick``: ResNet-50 TSN/TSM and TimeSformer-B only, frames 8/16/32 in the
    sweep, fp32 only unless ``dtypes`` says otherwise. An unknown dtype or a ``max_seconds``
    that is not positive raises ``ValueError`` before anything runs.
    """
    _check_settings(dtypes, max_seconds)
    say = print if verbose else (lambda *a, **k: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "cost.json"
    threads = threads or os.cpu_count() or 1
    timeout = max(120.0, 6 * max_seconds)
    start = time.perf_counter()
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    say(f"vidcls bench cost: {threads} thread(s), load average {load:.1f}" if load is not None
        else f"vidcls bench cost: {threads} thread(s)", flush=True)

    # Rates (GFLOPs/s) measured on whole models / blocks, used to decide what fits the budget.
    rate: dict[str, float] = {}
    for row in model_rows(quick):
        info = _flops_info(row)
        gflops = info["gflops_paper"]
        is_vit = row["model"].startswith("timesformer")
        depth = None
        entry = {**row, "params": info["params"], "gflops": gflops,
                 "paper": PAPER.get((row["model"], row["options"].get("attention", "")
                                     if is_vit else ""), {}),
                 "latency": {}}
        if is_vit:
            grid = (row["size"] // 16, row["size"] // 16)
            entry["comparisons"] = comparisons_per_token(row["attention"], row["frames"], grid)
            entry["comparisons_paper"] = paper_comparisons(row["attention"], row["frames"], grid)
            entry["comparisons_formula"] = PAPER_COMPARISONS[row["attention"]]
        for dtype in dtypes:
            mode = "block" if is_vit and gflops > full_gflops else "full"
            per_unit = gflops / 12 if mode == "block" else gflops
            guess = _estimate(rate.get(f"{dtype}-{'vit' if is_vit else 'cnn'}"), per_unit)
            spec = dict(model=row["model"], options=row["options"], frames=row["frames"],
                        size=row["size"], dtype=dtype, mode=mode, threads=threads,
                        max_seconds=max_seconds)
            family_rate = rate.get(f"{dtype}-{'vit' if is_vit else 'cnn'}")
            if guess is not None and guess > 2 * max_seconds:
                res = {"kind": "extrapolated",
                       "latency_s": guess * (12 if mode == "block" else 1),
                       "note": f"estimated from {family_rate:.0f} GFLOPs/s measured on "
                               f"smaller inputs"}
            else:
                m = _run_worker(spec, timeout)
                if "error" in m:
                    res = {"kind": "failed", "error": m["error"]}
                else:
                    # best of the runs: on a shared machine the fastest run is the one
                    # least disturbed by other jobs
                    if mode == "block":
                        depth = m["depth"]
                        total = m["embed_s"] + depth * m["min_s"]
                        kind = "per block"
                        unit_gflops = gflops / depth
                    else:
                        total, kind, unit_gflops = m["min_s"], "measured", gflops
                    key = f"{dtype}-{'vit' if is_vit else 'cnn'}"
                    rate[key] = max(rate.get(key, 0.0), unit_gflops / m["min_s"])
                    res = {"kind": kind, "latency_s": total, "runs": len(m["times"]),
                           "peak_rss_mb": m["peak_rss_mb"], "base_rss_mb": m["base_rss_mb"],
                           "activation_mb": m["activation_mb"], "raw": m}
            entry["latency"][dtype] = res
            lat = res.get("latency_s")
            say(f"  {row['label']:<44} {dtype}: "
                + (f"{lat:8.2f} s ({res['kind']})" if lat is not None else res.get("error", "")),
                flush=True)
        rows.append(entry)

    say("  TSN vs TSM ResNet-50 (8x224, fp32), timed in turn:", flush=True)
    shift = _run_worker(dict(mode="shift", threads=threads, rounds=3 if quick else 9,
                             max_seconds=10 * max_seconds), timeout=max(600.0, 30 * max_seconds))
    for label, pct in shift.get("overhead_pct", {}).items():
        say(f"    {label:<38} {shift['min_s'][label]:6.2f} s  {pct:+5.1f} % (paired "
            f"{shift['paired_overhead_pct'][label]:+5.1f} %)", flush=True)
    if "error" in shift:
        say(f"    failed: {shift['error']}", flush=True)

    sweep_rows = []
    if sweep:
        frames_list = (8, 16, 32) if quick else SWEEP_FRAMES
        say("  block latency vs frames (TimeSformer, 224x224, fp32):", flush=True)
        for att in ATTENTIONS:
            measured: list[tuple[int, float, float]] = []  # (frames, block GFLOPs, seconds)
            for frames in frames_list:
                row = dict(model="timesformer_base", options={"attention": att}, frames=frames,
                           size=224)
                block_gflops = _flops_info(row)["gflops_paper"] / 12
                point = {"attention": att, "frames": frames, "block_gflops": block_gflops}
                guess = (measured[-1][2] * block_gflops / measured[-1][1]) if measured else None
                if guess is not None and guess > max_seconds:
                    f0, g0, s0 = measured[-1]
                    point.update(kind="extrapolated", block_s=guess,
                                 note=f"from {f0} frames in proportion to FLOPs")
                else:
                    m = _run_worker(dict(model="timesformer_base", options={"attention": att},
                                         frames=frames, size=224, dtype="fp32", mode="block",
                                         threads=threads, max_seconds=max_seconds), timeout)
                    if "error" in m:
                        point.update(kind="failed", error=m["error"])
                    else:
                        point.update(kind="measured", block_s=m["min_s"],
                                     embed_s=m["embed_s"], activation_mb=m["activation_mb"],
                                     runs=len(m["times"]))
                        measured.append((frames, block_gflops, m["min_s"]))
                if "block_s" in point:
                    point["clip_s"] = point.get("embed_s", 0.0) + 12 * point["block_s"]
                sweep_rows.append(point)
                say(f"    {att:<13} {frames:3d} frames: "
                    + (f"{point['block_s'] * 1000:9.1f} ms/block ({point['kind']})"
                       if "block_s" in point else point.get("error", "")), flush=True)

    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "threads": threads, "load_average": load,
                    "torch": _torch_version()},
        "settings": {"quick": quick, "max_seconds": max_seconds, "dtypes": list(dtypes),
                     "full_gflops": full_gflops},
        "rows": rows, "sweep": sweep_rows, "shift": shift,
        "shift_overhead_paper": PAPER_SHIFT_OVERHEAD,
        "seconds": time.perf_counter() - start,
    }
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    say(f"vidcls bench cost: done in {result['seconds'] / 60:.1f} min -> {path}", flush=True)
    return path


def _torch_version() -> str:
    import torch

    return torch.__version__


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``python -m vidcls.repro.cost --worker SPEC_JSON``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--worker":
        print("usage: python -m vidcls.repro.cost --worker SPEC_JSON (use `vidcls bench cost`)",
              file=sys.stderr)
        return 2
    spec = json.loads(argv[1])
    print(json.dumps(measure_shift_overhead(spec) if spec.get("mode") == "shift"
                     else measure(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
