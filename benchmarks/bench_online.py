"""Online TSM per-frame latency vs the bare 2-D network on one frame, PyTorch and onnxruntime.

The paper's claim for online TSM: streaming costs one 2-D CNN frame per frame -- the shift
caches (1/8 of the channels of each shifted block's input) are the only extra work. This
script measures, at batch 1 and ``--size`` (224), on this CPU:

* ``2-D frame``: the same network without shifts on one frame (backbone + head; TSN per frame);
* ``online step``: ``OnlineTSM.step`` -- the frame plus the caches in, logits plus caches out;
* the same two through onnxruntime (the online export with the caches as explicit
  inputs/outputs, and a one-frame export of the 2-D network);

for TSM-MobileNetV2 (the TSM authors' online demo backbone) and TSM-ResNet-50. Target:
online / 2-D <= 1.02. Also the end-to-end rate a user sees with ``vidcls stream``: the
per-frame preprocessing of a 640x480 frame (resize short side to 256, centre crop, normalise)
plus the online step.

Noise control for a shared CPU: variants run interleaved, round after round; the table gives
medians, and a ratio is the median of per-round ratios (both timed back to back in a round):
:mod:`vidcls.repro.timing`.

    python benchmarks/bench_online.py --threads 1 --repeats 30 --markdown online.md  (a table to paste into docs/benchmarks.md)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidcls.export import OnnxClassifier, OnnxStreamSession, export_onnx
from vidcls.models import create_model
from vidcls.models.online_tsm import OnlineTSM
from vidcls.repro.timing import interleaved, paired_ratio


def build(arch: str, size: int, workdir: Path, threads: int) -> dict[str, Callable[[], object]]:
    """The four per-frame runners of one architecture (identical weights everywhere)."""
    torch.manual_seed(0)
    tsm = create_model(f"tsm_{arch}", num_classes=27, num_frames=8,
                       shift_mode="unidirectional").eval()
    tsn = create_model(f"tsn_{arch}", num_classes=27, num_frames=1).eval()
    tsn.load_state_dict(tsm.state_dict())  # the shift has no parameters: same weights
    online = OnlineTSM(tsm)
    frame = torch.randn(1, 3, size, size)
    online.step(frame)  # allocate the caches

    export_onnx(tsm, workdir / f"{arch}_online.onnx", online=True, input_size=size)
    export_onnx(tsn, workdir / f"{arch}_frame.onnx", input_size=size, num_frames=1)
    ort_online = OnnxStreamSession(workdir / f"{arch}_online.onnx", threads=threads)
    ort_frame = OnnxClassifier(workdir / f"{arch}_frame.onnx", threads=threads)
    frame_np, clip_np = frame.numpy(), frame[:, None].numpy()
    ort_online.step(frame_np)

    def torch_frame():
        with torch.inference_mode():
            feats = tsn.backbone.forward_features(frame)  # (1, C)
            tsn.forward_head(feats[:, None])

    def torch_online():
        with torch.inference_mode():
            online.step(frame)

    return {f"{arch} torch 2-D frame": torch_frame, f"{arch} torch online step": torch_online,
            f"{arch} onnx 2-D frame": lambda: ort_frame(clip_np),
            f"{arch} onnx online step": lambda: ort_online.step(frame_np)}


def cache_traffic_runner(arch: str, size: int) -> tuple[Callable[[], object], float]:
    """The data movement the online step adds, alone: per shifted block, the concat of the
    cached channels with the current frame's others and the copy of the next cache (what
    ``TemporalShift.online_step`` does). Returns the runner and the MB of block inputs."""
    model = create_model(f"tsm_{arch}", num_classes=27, shift_mode="unidirectional").eval()
    shapes = OnlineTSM(model).state_shapes(size, size)
    xs = [torch.randn(1, s.channels, h, w) for s, (_, h, w) in
          zip(model.temporal_shifts(), shapes)]
    caches = [torch.randn(1, *shape) for shape in shapes]

    def run():
        for x, cache in zip(xs, caches):
            fold = cache.shape[1]
            torch.cat([cache, x[:, fold:]], dim=1)
            x[:, :fold].clone()
    return run, sum(x.numel() * 4 for x in xs) / 1e6


def preprocess_runner(size: int) -> Callable[[], object]:
    from vidcls.data.transforms import build_test_transform, normalize
    from vidcls.models import IMAGENET

    transform = build_test_transform(size=size, resize=round(size * 256 / 224))
    rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def run():
        normalize(transform(rgb[None]), IMAGENET.mean, IMAGENET.std)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--archs", nargs="+", default=["mobilenetv2", "resnet50"])
    parser.add_argument("--markdown", help="also write the results as a markdown file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        runners: dict[str, Callable[[], object]] = {}
        traffic_mb = {}
        for arch in args.archs:
            runners.update(build(arch, args.size, Path(tmp), args.threads))
            runners[f"{arch} cache traffic"], traffic_mb[arch] = cache_traffic_runner(
                arch, args.size)
        runners["preprocess 640x480 frame"] = preprocess_runner(args.size)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        times = interleaved(runners, args.repeats, args.warmup)

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    lines = [f"Per-frame latency, batch 1, {args.size}x{args.size}, fp32, {args.threads} "
             f"thread(s), torch {torch.__version__}, {platform.processor() or platform.machine()}"
             f", {os.cpu_count()} CPUs, load average {load:.1f} at the start; medians of "
             f"{args.repeats} interleaved rounds", "",
             "| model | backend | 2-D frame (ms) | online step (ms) | online / 2-D | "
             "step fps | end-to-end fps (+ preprocess) |",
             "|---|---|---|---|---|---|---|"]
    pre = med["preprocess 640x480 frame"]
    for arch in args.archs:
        for backend in ("torch", "onnx"):
            base, step = f"{arch} {backend} 2-D frame", f"{arch} {backend} online step"
            ratio = paired_ratio(times, step, base)
            lines.append(f"| TSM-{arch} | {backend} | {med[base]:.2f} | {med[step]:.2f} | "
                         f"{ratio:.3f} | {1e3 / med[step]:.0f} | {1e3 / (med[step] + pre):.0f} |")
    lines += ["", "Extra data movement of the online step alone (concat of the cached channels "
                  "+ copy of the next cache, every shifted block), the overhead to expect:", "",
              "| model | shifted-block inputs (MB) | cache traffic (ms) | share of the torch "
              "2-D frame |", "|---|---|---|---|"]
    for arch in args.archs:
        traffic = med[f"{arch} cache traffic"]
        lines.append(f"| TSM-{arch} | {traffic_mb[arch]:.2f} | {traffic:.2f} | "
                     f"{100 * traffic / med[f'{arch} torch 2-D frame']:.1f}% |")
    lines += ["", f"Preprocessing one 640x480 frame (resize short side, centre crop, normalise): "
                  f"{pre:.2f} ms."]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        intro = __doc__.split("\n\nNoise control")[0].split("\n", 2)[2]
        Path(args.markdown).write_text(
            "# Online TSM latency (vidcls stream)\n\n" + intro + "\n\n" + text
            + "\n\nReproduce: `python benchmarks/bench_online.py "
            f"--threads {args.threads} --repeats {args.repeats} --markdown {args.markdown}`\n")


if __name__ == "__main__":
    main()
