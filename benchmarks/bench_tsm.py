"""TSM latency overhead over TSN, and the cost of the shift op itself (CPU, fp32).

Prints, from one run:

1. model latency, batch 1, ``--frames`` x ``--size``: TSN-R50 and TSM-R50 with shift_div 8
   (the default, 1/4 of the channels moved), 4, 2 (the paper's naive "shift everything"), and
   in-place vs residual placement, each as a ratio to TSN (paper, ResNet-50 8 frames: partial
   shift ~ +3%, full shift +13.7% CPU latency);
2. the shift op alone at a ResNet-50 layer1 activation (``(frames, 256, size/4, size/4)``):
   ours (eager, every element written once), ours while exporting (``torch.cat`` of slices),
   the TSM reference formulation (zero-filled full buffer + copies) and a plain ``clone()``
   (the least data movement that produces a new tensor), forward and forward+backward.

Noise control for a shared CPU: all variants run interleaved, round after round, and the table
reports medians; a ratio is the median of the per-round ratios (each round times both models
back to back, so slow phases of the machine cancel): :mod:`vidcls.repro.timing`.

    python benchmarks/bench_tsm.py --threads 2 --repeats 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from vidcls.models import create_model
from vidcls.ops.temporal_shift import _shift_cat, temporal_shift
from vidcls.repro.timing import interleaved, paired_ratio

# the TSM authors' formulation is a test oracle (tests/reference/), not library code
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference.tsm_shift import temporal_shift_reference_style  # noqa: E402


def bench_models(args) -> None:
    variants = {
        "TSN-R50": dict(name="tsn_resnet50"),
        "TSM-R50 div8 residual": dict(name="tsm_resnet50", shift_div=8),
        "TSM-R50 div4 residual": dict(name="tsm_resnet50", shift_div=4),
        "TSM-R50 div2 residual": dict(name="tsm_resnet50", shift_div=2),
        "TSM-R50 div8 inplace": dict(name="tsm_resnet50", shift_div=8, shift_place="inplace"),
    }
    torch.manual_seed(0)
    models = {}
    reference_state = None
    for label, cfg in variants.items():
        cfg = dict(cfg)
        model = create_model(cfg.pop("name"), num_classes=400, num_frames=args.frames, **cfg).eval()
        if reference_state is None:
            reference_state = model.state_dict()
        model.load_state_dict(reference_state)  # identical weights everywhere
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        models[label] = model
    x = torch.randn(1, args.frames, 3, args.size, args.size)

    def runner(model):
        def run():
            with torch.inference_mode():
                model(x)
        return run

    times = interleaved({k: runner(m) for k, m in models.items()}, args.repeats, args.warmup)
    print(f"\nModel latency, batch 1, {args.frames}x{args.size}, fp32, threads="
          f"{torch.get_num_threads()}, channels_last={args.channels_last}, {args.repeats} rounds")
    print(f"{'model':<24}{'median ms':>12}{'min ms':>10}{'/ TSN':>9}")
    for label in models:
        ratio = paired_ratio(times, label, "TSN-R50")
        print(f"{label:<24}{1e3 * statistics.median(times[label]):>12.1f}"
              f"{1e3 * min(times[label]):>10.1f}{ratio:>9.3f}")
    print("paper (ResNet-50, 8 frames, CPU): partial shift ~1.03, full shift (div2) 1.137; "
          "target here: div8 residual <= 1.01")


def bench_shift_op(args) -> None:
    side = args.size // 4  # ResNet-50 layer1 resolution
    x = torch.randn(args.frames, 256, side, side)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    frames = args.frames

    def export_path():  # what tracing / ONNX export runs
        x5 = x.reshape(-1, frames, *x.shape[1:])  # (N, T, C, H, W)
        return _shift_cat(x5, x.shape[1] // 8, True).reshape(x.shape)

    forward = {
        "clone() (lower bound)": lambda: x.clone(),
        "ours (eager)": lambda: temporal_shift(x, frames, 8),
        "ours (export path)": export_path,
        "reference (zeros+copy)": lambda: temporal_shift_reference_style(x, frames, 8),
    }
    with torch.inference_mode():
        fwd = interleaved(forward, args.op_repeats, args.warmup)

    xg = x.clone().requires_grad_(True)
    grad = torch.randn_like(x)

    def train_step(fn):
        def run():
            xg.grad = None
            fn(xg).backward(grad)
        return run

    backward = {
        "clone() (lower bound)": train_step(lambda t: t.clone()),
        "ours (eager)": train_step(lambda t: temporal_shift(t, frames, 8)),
        "ours (export path)": train_step(
            lambda t: _shift_cat(t.reshape(-1, frames, *t.shape[1:]), t.shape[1] // 8, True)
            .reshape(t.shape)),
        "reference (zeros+copy)": train_step(lambda t: temporal_shift_reference_style(t, frames, 8)),
    }
    bwd = interleaved(backward, args.op_repeats, args.warmup)
    assert torch.equal(temporal_shift(x, frames, 8), temporal_shift_reference_style(x, frames, 8))

    mb = x.numel() * x.element_size() / 2**20
    print(f"\nShift op alone, {tuple(x.shape)} fp32 ({mb:.1f} MiB), shift_div 8, "
          f"{args.op_repeats} rounds")
    print(f"{'implementation':<24}{'fwd ms':>10}{'/ ours':>9}{'fwd+bwd ms':>13}{'/ ours':>9}")
    for label in forward:
        print(f"{label:<24}{1e3 * statistics.median(fwd[label]):>10.2f}"
              f"{paired_ratio(fwd, label, 'ours (eager)'):>9.2f}"
              f"{1e3 * statistics.median(bwd[label]):>13.2f}"
              f"{paired_ratio(bwd, label, 'ours (eager)'):>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=10, help="interleaved rounds (models)")
    parser.add_argument("--op-repeats", type=int, default=50, help="interleaved rounds (shift op)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=224, help="frame height and width")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--skip-models", action="store_true", help="only the shift-op table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench_shift_op(args)
    if not args.skip_models:
        bench_models(args)


if __name__ == "__main__":
    main()
