"""TimeSformer: vidcls vs HF transformers, measured in one run on this machine (CPU).

Prints ratios (not absolute claims):

1. Divided attention, TimeSformer-B (``--frames`` x ``--size``, default 8 x 224), identical
   weights (HF model converted with ``vidcls.convert.timesformer_from_hf``): fp32 latency
   ratio HF / ours (target >= 1.1), peak-memory ratio ours / HF, and the bf16-autocast speed-up.
2. Joint attention at ``--joint-frames`` (default 16): peak-memory ratio ours / HF
   (target <= 0.5: SDPA's fused kernels never store the (N*T)^2 attention matrix).
3. Latency growth from 8 to 96 frames (``--growth-frames``), divided vs joint, vidcls only,
   with ``--growth-depth`` blocks (default 1: every block costs the same, so the growth of one
   block is the growth of the model; joint at 96 frames would take minutes per 12-block pass).

Latency: both models in one process, runs interleaved (HF, ours, HF, ours, ...), median of
``--repeats`` after one warm-up, ``torch.inference_mode``, ``--threads`` intra-op threads
(:func:`vidcls.repro.timing.interleaved`).

Peak memory: every measurement runs in a fresh subprocess that builds only its own model,
with glibc's mmap threshold fixed at 128 KiB (so freed tensors leave RSS at once), runs one
warm-up forward pass, returns freed heap to the OS (``malloc_trim``), resets the
kernel's peak-RSS counter (``/proc/self/clear_refs`` <- 5), runs one forward pass, and reads
``VmHWM`` from ``/proc/self/status`` (:func:`vidcls.repro.timing.call_peak_kb`). The reported
number is peak RSS during that forward minus RSS before it: activation memory, weights
excluded. (tracemalloc does not see torch's allocations; where ``clear_refs`` is unavailable,
``ru_maxrss`` is used and construction peaks may leak in.)

Example:  python benchmarks/bench_timesformer.py --threads 2 --repeats 3 --depth 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

from vidcls.repro.runner import run_json
from vidcls.repro.timing import (call_peak_kb, interleaved, machine_line, matmul_peak_gflops,
                                 native_bf16)


def hf_config(attention: str, frames: int, size: int, depth: int):
    from transformers import TimesformerConfig
    hf_type = {"divided": "divided_space_time", "joint": "joint_space_time"}[attention]
    return TimesformerConfig(num_frames=frames, image_size=size, num_hidden_layers=depth,
                             num_labels=400, attention_type=hf_type)


def build(impl: str, attention: str, frames: int, size: int, depth: int):
    if impl == "hf":
        from transformers import TimesformerForVideoClassification
        return TimesformerForVideoClassification(hf_config(attention, frames, size, depth)).eval()
    from vidcls.models.timesformer import TimeSformer
    return TimeSformer(num_classes=400, num_frames=frames, attention=attention, img_size=size,
                       depth=depth).eval()


def run(model, x):
    out = model(x)
    return out.logits if hasattr(out, "logits") else out


def memory_child(impl: str, attention: str, frames: int, size: int, depth: int, batch: int,
                 dtype: str) -> None:
    """Subprocess body: print the forward pass's peak RSS delta (KiB) as JSON."""
    torch.manual_seed(0)
    model = build(impl, attention, frames, size, depth)
    x = torch.randn(batch, frames, 3, size, size)
    with torch.inference_mode():
        run(model, x)  # warm-up: lazily created kernels / thread pools are not activations

    def forward():
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16,
                                                    enabled=dtype == "bf16"):
            run(model, x)

    delta, method = call_peak_kb(forward)
    print(json.dumps({"delta_kib": delta, "method": method}))


def peak_memory_mib(args, impl: str, attention: str, frames: int) -> float:
    cmd = [sys.executable, __file__, "--child", impl, attention, str(frames), str(args.size),
           str(args.depth), str(args.batch), "fp32"]
    # A fixed mmap threshold switches off glibc's dynamic one, so every tensor above 128 KiB is
    # its own mapping, returned to the OS when freed: RSS then follows live tensor memory
    # instead of heap fragmentation.
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    result = run_json(cmd, timeout=3600, env=env)
    if "error" in result:
        raise RuntimeError(f"memory measurement {impl} {attention} {frames} frames failed: "
                           f"{result['error']}")
    return result["delta_kib"] / 1024


def clip_gflop(args) -> float:
    """FLOPs (2 per multiply-add) of one divided forward pass, as ``vidcls info`` counts them."""
    from vidcls.info import count_flops
    from vidcls.models.timesformer import TimeSformer
    with torch.device("meta"):
        model = TimeSformer(num_classes=400, num_frames=args.frames, img_size=args.size,
                            depth=args.depth).eval()
    return count_flops(model, (args.batch, args.frames, 3, args.size, args.size)) / 1e9


def latencies(models: dict, x, repeats: int, bf16: bool = False) -> dict[str, float]:
    """Median seconds per forward for each model, runs interleaved after one warm-up each."""
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        times = interleaved({name: (lambda m=m: run(m, x)) for name, m in models.items()},
                            repeats, warmup=1)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=8, help="frames for the divided comparison")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--depth", type=int, default=12, help="blocks (12 = TimeSformer-B)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--joint-frames", type=int, default=16)
    p.add_argument("--growth-frames", default="8,96")
    p.add_argument("--growth-depth", type=int, default=1)
    p.add_argument("--skip", default="", help="comma list of sections to skip: "
                   "latency,bf16,memory,joint,growth")
    p.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        impl, attention, frames, size, depth, batch, dtype = args.child
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        memory_child(impl, attention, int(frames), int(size), int(depth), int(batch), dtype)
        return

    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    print(f"# {machine_line()}")
    print(f"# batch {args.batch}, depth {args.depth}, {args.frames} x {args.size}px")
    if not native_bf16():
        print("# this CPU has no native bf16 (avx512_bf16 / amx_bf16): bf16 matmuls are "
              "emulated, expect bf16 autocast to be slower than fp32")

    if "latency" not in skip:
        from transformers import TimesformerForVideoClassification
        from vidcls.convert import timesformer_from_hf
        torch.manual_seed(0)
        hf = TimesformerForVideoClassification(
            hf_config("divided", args.frames, args.size, args.depth)).eval()
        ours = timesformer_from_hf(hf)
        x = torch.randn(args.batch, args.frames, 3, args.size, args.size)
        with torch.inference_mode():
            diff = (run(hf, x) - run(ours, x)).abs().max().item()
        fp32 = latencies({"hf": hf, "ours": ours}, x, args.repeats)
        print(f"divided {args.frames}x{args.size}: max |logit diff| {diff:.2e}")
        print(f"  fp32 latency  HF {fp32['hf']:.3f}s  ours {fp32['ours']:.3f}s  "
              f"speed-up HF/ours = {fp32['hf'] / fp32['ours']:.2f}x (target >= 1.15)")
        if "bf16" not in skip:
            bf16 = latencies({"hf": hf, "ours": ours}, x, args.repeats, bf16=True)
            print(f"  bf16 autocast HF {bf16['hf']:.3f}s  ours {bf16['ours']:.3f}s  "
                  f"ours fp32/bf16 = {fp32['ours'] / bf16['ours']:.2f}x, "
                  f"HF/ours in bf16 = {bf16['hf'] / bf16['ours']:.2f}x (target >= 1.15)")
            gflop = clip_gflop(args)
            peak = matmul_peak_gflops(torch.bfloat16)  # measured now, after the runs
            print(f"  bf16 throughput: {gflop:.0f} GFLOP per clip / {bf16['ours']:.3f}s = "
                  f"{gflop / bf16['ours']:.0f} GFLOP/s = {100 * gflop / bf16['ours'] / peak:.0f} % "
                  f"of the bf16 matmul peak measured now ({peak:.0f} GFLOP/s; target >= 75 %)")
        del hf, ours

    if "memory" not in skip:
        m_hf = peak_memory_mib(args, "hf", "divided", args.frames)
        m_ours = peak_memory_mib(args, "ours", "divided", args.frames)
        print(f"divided {args.frames}x{args.size} forward peak memory (RSS delta): "
              f"HF {m_hf:.0f} MiB  ours {m_ours:.0f} MiB  ours/HF = {m_ours / m_hf:.2f}x")

    if "joint" not in skip:
        m_hf = peak_memory_mib(args, "hf", "joint", args.joint_frames)
        m_ours = peak_memory_mib(args, "ours", "joint", args.joint_frames)
        print(f"joint {args.joint_frames}x{args.size} forward peak memory (RSS delta): "
              f"HF {m_hf:.0f} MiB  ours {m_ours:.0f} MiB  ours/HF = {m_ours / m_hf:.2f}x "
              f"(target <= 0.5)")

    if "growth" not in skip:
        from vidcls.models.timesformer import TimeSformer
        frames = [int(f) for f in args.growth_frames.split(",")]
        res = {}
        for attention in ("divided", "joint"):
            torch.manual_seed(0)
            model = TimeSformer(num_classes=400, num_frames=frames[0], attention=attention,
                                img_size=args.size, depth=args.growth_depth).eval()
            for f in frames:
                x = torch.randn(1, f, 3, args.size, args.size)
                res[attention, f] = latencies({"m": model}, x, max(1, args.repeats // 2))["m"]
        print(f"latency growth, ours, {args.growth_depth} block(s), {args.size}px:")
        for attention in ("divided", "joint"):
            row = "  ".join(f"{f}f {res[attention, f]:.3f}s" for f in frames)
            growth = res[attention, frames[-1]] / res[attention, frames[0]]
            print(f"  {attention:8s} {row}  growth {frames[0]}->{frames[-1]} frames = "
                  f"{growth:.1f}x (frames x{frames[-1] / frames[0]:.0f})")


if __name__ == "__main__":
    main()
