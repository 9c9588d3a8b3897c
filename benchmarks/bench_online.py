"""Online TSM per-frame latency vs the bare 2-D network on one frame: PyTorch, onnxruntime
(fp32 and int8) and, where it is installed, OpenVINO.

The paper's claim for online TSM: streaming costs one 2-D CNN frame per frame -- the shift
caches (1/8 of the channels of each shifted block's input) are the only extra work. This
script measures, at batch 1 and ``--size`` (224), on this CPU:

* ``2-D frame``: the same network without shifts on one frame (backbone + head; TSN per frame);
* ``online step``: ``OnlineTSM.step`` -- the frame plus the caches in, logits plus caches out;
* the same two through onnxruntime: the online export as ``vidcls export --online`` writes it
  (residual streams split at the cached channels, :mod:`vidcls.export.shift_split`), the
  traced graph before that rewrite (``onnx, traced step``), and a one-frame export of the 2-D
  network; sessions keep the caches bound in onnxruntime (``OnnxStreamSession``);
* ``onnx int8``: the online export quantized to int8 (``vidcls export --online --int8``),
  calibrated on synthetic clips, with its top-1 agreement with fp32 on other synthetic clips;
* ``openvino fp32`` / ``openvino bf16`` (``pip install 'vidcls[openvino]'``; bf16 only on a
  CPU that computes it natively): the same ONNX files run by OpenVINO's CPU plugin as
  ``vidcls stream --backend openvino`` runs them, with their top-1 agreement with
  onnxruntime fp32.

for TSM-MobileNetV2 (the TSM authors' online demo backbone) and TSM-ResNet-50. Target:
online / 2-D <= 1.02. Also the end-to-end rate a user sees with ``vidcls stream``: the
per-frame preprocessing of a 640x480 frame (resize short side to 256, centre crop, normalise)
plus the online step. Weights are random, with batch-norm statistics fitted to random clips
so activations (and the int8 ranges) look like a network's: agreement figures on such a model
are a floor, not the figure for a trained one.

Noise control for a shared CPU: variants run interleaved, round after round; the table gives
medians, and a ratio is the median of per-round ratios (both timed back to back in a round):
:mod:`vidcls.repro.timing`.

    python benchmarks/bench_online.py --threads 1 --repeats 30 --markdown online.md  (a table to paste into docs/benchmarks.md)
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidcls.export import OnnxStreamSession, export_onnx, onnx_session, read_onnx_metadata
from vidcls.export.quantize import int8_agreement, quantize_online
from vidcls.models import create_model
from vidcls.models.online_tsm import OnlineTSM
from vidcls.repro.timing import interleaved, machine_line, native_bf16, paired_ratio

ARCHS = ("mobilenetv2", "resnet50")


def _fit_batch_norm(model: torch.nn.Module, size: int) -> torch.nn.Module:
    """Batch-norm statistics from two random 4-frame clips, and a head whose logits differ
    visibly between classes (eval mode afterwards)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 4, 3, size, size, generator=torch.Generator().manual_seed(0)))
        model.head.weight.normal_(0, model.head.weight.shape[1] ** -0.5,
                                  generator=torch.Generator().manual_seed(1))
    return model.eval()


def synthetic_clips(count: int, size: int, seed: int, frames: int = 8) -> list[np.ndarray]:
    """``float32 (T, 3, S, S)`` clips of the synthetic moving-objects videos, preprocessed as
    ``vidcls stream`` does (short side to 256/224 of the crop, centre crop, ImageNet norm)."""
    from vidcls.data.synthetic import render_video
    from vidcls.data.transforms import build_test_transform, normalize
    from vidcls.models import IMAGENET

    transform = build_test_transform(size=size, resize=round(size * 256 / 224))
    return [normalize(transform(render_video("objects", i % 4, seed + i, num_classes=4,
                                             num_frames=frames, size=96)),
                      IMAGENET.mean, IMAGENET.std).numpy() for i in range(count)]


def _ort_frame_runner(path: Path, threads: int, clip: np.ndarray) -> Callable[[], object]:
    """The one-frame export with its input and output bound, as OnnxStreamSession runs."""
    session = onnx_session(path, threads=threads)
    binding = session.io_binding()
    binding.bind_output("logits")

    def run():
        binding.bind_cpu_input("clip", clip)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
    return run


def _openvino_agreement(session, fp32: OnnxStreamSession, clips: list[np.ndarray]) -> float:
    """Share of frames where OpenVINO's top-1 is onnxruntime fp32's."""
    same = total = 0
    for clip in clips:
        session.reset()
        fp32.reset()
        for x in clip:
            same += int(session.step(x[None]).argmax() == fp32.step(x[None]).argmax())
            total += 1
    return same / total


def build(arch: str, size: int, workdir: Path, threads: int, openvino: list[str],
          stats: dict) -> dict[str, Callable[[], object]]:
    """The per-frame runners of one architecture (identical weights everywhere); fills
    ``stats`` with int8 / OpenVINO agreement figures."""
    torch.manual_seed(0)
    tsm = _fit_batch_norm(create_model(f"tsm_{arch}", num_classes=27, num_frames=8,
                                       shift_mode="unidirectional"), size)
    tsn = create_model(f"tsn_{arch}", num_classes=27, num_frames=1).eval()
    tsn.load_state_dict(tsm.state_dict())  # the shift has no parameters: same weights
    online = OnlineTSM(tsm)
    frame = torch.randn(1, 3, size, size)
    online.step(frame)  # allocate the caches

    paths = {k: workdir / f"{arch}_{k}.onnx" for k in ("online", "traced", "frame", "int8")}
    export_onnx(tsm, paths["online"], online=True, input_size=size)
    export_onnx(tsm, paths["traced"], online=True, input_size=size, split_shift=False)
    export_onnx(tsn, paths["frame"], input_size=size, num_frames=1)
    quantize_online(paths["online"], paths["int8"], synthetic_clips(4, size, seed=0))
    check = int8_agreement(paths["online"], paths["int8"], synthetic_clips(8, size, seed=100))
    stats[arch] = {"int8": check,
                   "shift_split": read_onnx_metadata(paths["online"])["shift_split"],
                   "states": online.num_states}
    frame_np = np.ascontiguousarray(frame.numpy())
    sessions = {k: OnnxStreamSession(paths[k], threads=threads) for k in ("online", "traced",
                                                                           "int8")}

    def torch_frame():
        with torch.inference_mode():
            feats = tsn.backbone.forward_features(frame)  # (1, C)
            tsn.forward_head(feats[:, None])

    def torch_online():
        with torch.inference_mode():
            online.step(frame)

    runners = {f"{arch} torch 2-D frame": torch_frame, f"{arch} torch online step": torch_online,
               f"{arch} onnx 2-D frame": _ort_frame_runner(paths["frame"], threads,
                                                           frame_np[:, None].copy())}
    for key, label in (("online", "onnx"), ("traced", "onnx, traced step"),
                       ("int8", "onnx int8")):
        runners[f"{arch} {label} online step"] = (lambda s=sessions[key]: s.step(frame_np))
    for precision in openvino:  # what `vidcls stream --backend openvino` runs
        from vidcls.export.openvino_session import OpenVinoClassifier, OpenVinoStreamSession

        frame_model = OpenVinoClassifier(paths["frame"], threads=threads, precision=precision)
        step = OpenVinoStreamSession(paths["online"], threads=threads, precision=precision)
        stats[arch][f"openvino {precision}"] = _openvino_agreement(
            step, sessions["online"], synthetic_clips(8, size, seed=100))
        step.reset()
        clip_np = frame_np[:, None].copy()
        runners[f"{arch} openvino {precision} 2-D frame"] = (
            lambda m=frame_model: m(clip_np))
        runners[f"{arch} openvino {precision} online step"] = (
            lambda s=step: s.step(frame_np))
    for session in sessions.values():
        session.reset()
    return runners


def cache_traffic_runner(arch: str, size: int) -> tuple[Callable[[], object], float]:
    """The data movement the online step adds in PyTorch, alone: per shifted block, the concat
    of the cached channels with the current frame's others and the copy of the next cache.
    Returns the runner and the MB of block inputs."""
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


def _openvino_precisions() -> list[str]:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return []
    return ["fp32", "bf16"] if native_bf16() else ["fp32"]


def _tables(args, times, stats, traffic_mb, backends, load) -> list[str]:
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    pre = med["preprocess 640x480 frame"]
    lines = [f"`{machine_line()}`", "",
             f"Per-frame latency, batch 1, {args.size}x{args.size}, {args.threads} thread(s), "
             f"{os.cpu_count()} CPUs, load average {load:.1f} at the start; medians of "
             f"{args.repeats} interleaved rounds", "",
             "| model | backend | 2-D frame (ms) | online step (ms) | online / 2-D | "
             "step fps | end-to-end fps (+ preprocess) |",
             "|---|---|---|---|---|---|---|"]
    for arch in args.archs:
        for backend in backends:
            step = f"{arch} {backend} online step"
            base = f"{arch} {backend.split(',')[0].replace(' int8', '')} 2-D frame"
            if step not in med:
                continue
            ratio = f"{paired_ratio(times, step, base):.3f}"
            if backend == "onnx int8":  # its 2-D reference is the fp32 frame
                ratio = f"({ratio} of the fp32 2-D)"
            lines.append(f"| TSM-{arch} | {backend} | {med[base]:.2f} | {med[step]:.2f} | "
                         f"{ratio} | {1e3 / med[step]:.0f} | {1e3 / (med[step] + pre):.0f} |")
    lines += ["", "Online step against onnxruntime fp32 (same run): fps ratio (median of "
                  "per-round ratios) and agreement with fp32 on 8 other synthetic clips "
                  "(64 frames):", "",
              "| model | backend | step fps | x onnxruntime fp32 fps | same top-1 as fp32 | "
              "max prob. diff | shifted blocks split |", "|---|---|---|---|---|---|---|"]
    for arch in args.archs:
        ref = f"{arch} onnx online step"
        for backend in [b for b in backends if b not in ("torch",)]:
            step = f"{arch} {backend} online step"
            if step not in med:
                continue
            gain = paired_ratio(times, ref, step)
            if backend == "onnx int8":
                agree = f"{100 * stats[arch]['int8']['top1_agreement']:.1f}%"
                diff = f"{stats[arch]['int8']['max_prob_diff']:.3f}"
            elif backend.startswith("openvino"):
                agree, diff = f"{100 * stats[arch][backend]:.1f}%", ""
            else:
                agree = "(reference)" if backend == "onnx" else "same function (tested)"
                diff = ""
            split = f"{stats[arch]['shift_split']} / {stats[arch]['states']}" \
                if backend == "onnx" else ""
            lines.append(f"| TSM-{arch} | {backend} | {1e3 / med[step]:.0f} | {gain:.2f}x | "
                         f"{agree} | {diff} | {split} |")
    lines += ["", "Extra data movement of the online step alone in PyTorch (concat of the cached "
                  "channels + copy of the next cache, every shifted block), the overhead to "
                  "expect:", "",
              "| model | shifted-block inputs (MB) | cache traffic (ms) | share of the torch "
              "2-D frame |", "|---|---|---|---|"]
    for arch in args.archs:
        traffic = med[f"{arch} cache traffic"]
        lines.append(f"| TSM-{arch} | {traffic_mb[arch]:.2f} | {traffic:.2f} | "
                     f"{100 * traffic / med[f'{arch} torch 2-D frame']:.1f}% |")
    lines += ["", f"Preprocessing one 640x480 frame (resize short side, centre crop, normalise): "
                  f"{pre:.2f} ms."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1, help="torch, onnxruntime and "
                                                               "OpenVINO threads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--no-openvino", action="store_true", help="skip OpenVINO even if "
                                                                   "installed")
    parser.add_argument("--markdown", help="also write the results as a markdown file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    openvino = [] if args.no_openvino else _openvino_precisions()
    backends = ["torch", "onnx", "onnx, traced step", "onnx int8",
                *[f"openvino {p}" for p in openvino]]

    with tempfile.TemporaryDirectory() as tmp:
        runners: dict[str, Callable[[], object]] = {}
        traffic_mb, stats = {}, {}
        for arch in args.archs:
            runners.update(build(arch, args.size, Path(tmp), args.threads, openvino, stats))
            runners[f"{arch} cache traffic"], traffic_mb[arch] = cache_traffic_runner(
                arch, args.size)
        runners["preprocess 640x480 frame"] = preprocess_runner(args.size)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        times = interleaved(runners, args.repeats, args.warmup)

    text = "\n".join(_tables(args, times, stats, traffic_mb, backends, load))
    print(text)
    if args.markdown:
        intro = __doc__.split("\n\nNoise control")[0].split("\n", 2)[2]
        Path(args.markdown).write_text(
            "# Online TSM latency (vidcls stream)\n\n" + intro + "\n\n" + text
            + "\n\nReproduce: `python benchmarks/bench_online.py "
            f"--threads {args.threads} --repeats {args.repeats} --markdown {args.markdown}`\n")


if __name__ == "__main__":
    main()
