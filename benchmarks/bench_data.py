"""Data-loading throughput: seeking decoder vs "decode everything, then index".

Clips per second of 8-segment TSN training clips (random frame per segment, multi-scale crop to
224, through a real ``DataLoader``) from

  (a) 720p H.264 videos of 10 s (1280x720, 30 fps, B-frames, a keyframe every ``--gop``),
  (b) 340x256 videos of the same length (the size of the TSM repo's pre-resized Kinetics),

for ``vidcls`` (``VideoReader``: seek to the keyframe before each wanted frame, decode forward,
convert only the wanted frames) against a naive reader measured in the same run, which decodes
every frame to RGB and then indexes (what ``torchvision.io.read_video``-style loaders do).
Also prints the share of time spent decoding vs transforming, measured in one process.

The videos are generated once into ``--cache-dir``. Example (what docs/benchmarks.md quotes):

    python benchmarks/bench_data.py --videos 4 --clips 32
    python benchmarks/bench_data.py --quick        # a smoke run, ~1 minute
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from vidcls.data.dataset import VideoClipDataset, collate_clips
from vidcls.data.formats import VideoRecord
from vidcls.data.sampling import sample_indices
from vidcls.data.transforms import build_train_transform
from vidcls.data.video import VideoDecodeError, VideoReader
from vidcls.repro.timing import timed


# --------------------------------------------------------------------------- test videos
def make_video(path: Path, width: int, height: int, seconds: float, fps: int, gop: int,
               seed: int) -> None:
    """A panning, zooming textured scene with a moving square: realistic work for x264."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    small = rng.integers(0, 256, (height // 16 + 8, width // 16 + 8, 3), dtype=np.uint8)
    tex = torch.nn.functional.interpolate(
        torch.from_numpy(small).permute(2, 0, 1)[None].float(), scale_factor=16,
        mode="bilinear", align_corners=False)[0].permute(1, 2, 0).to(torch.uint8).numpy()
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "veryfast", "crf": "23", "bf": "3"}
        s.thread_type = "AUTO"
        for i in range(n):
            dy, dx = int(i * 0.2) % 64, int(i * 0.4) % 64  # slow pan (whole-pixel)
            img = np.ascontiguousarray(tex[dy:dy + height, dx:dx + width])
            x = int((0.5 + 0.4 * np.sin(i / fps)) * (width - height // 4))
            img[height // 3: height // 3 + height // 4, x: x + height // 4] = (255, 40, 40)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)


def ensure_videos(cache: Path, name: str, width: int, height: int, args) -> list[Path]:
    d = cache / f"{name}_{width}x{height}_{args.seconds:g}s_{args.fps}fps_gop{args.gop}"
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"v{i}.mp4" for i in range(args.videos)]
    for i, p in enumerate(paths):
        if not p.exists():
            _, seconds = timed(lambda: make_video(p, width, height, args.seconds, args.fps,
                                                  args.gop, seed=i))
            print(f"  encoded {p} in {seconds:.1f} s", flush=True)
    return paths


# --------------------------------------------------------------------------- the baseline
class DecodeAllDataset(VideoClipDataset):
    """Same sampling and transform, but the reader decodes every frame to RGB, then indexes."""

    def _read(self, rec, rng):
        try:
            with av.open(rec.path) as c:
                c.streams.video[0].thread_type = "AUTO"
                frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        except av.error.FFmpegError as e:
            raise VideoDecodeError(rec.path, str(e)) from None
        idx = sample_indices(len(frames), mode=self.sampling, num_frames=self.num_frames,
                             train=self.train, rng=rng, num_clips=self.num_clips)
        return idx, frames[idx.reshape(-1)]


# --------------------------------------------------------------------------- measurements
def loader_throughput(dataset, clips: int, workers: int, batch_size: int) -> float:
    """Clips per second over ``clips`` items (the dataset is cycled), worker start-up included
    (timing from the first batch would credit the batches prefetched meanwhile)."""
    order = [i % len(dataset) for i in range(clips)]

    def load_all() -> int:
        loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=batch_size,
                            num_workers=workers, collate_fn=collate_clips, shuffle=False)
        return sum(batch["clip"].shape[0] for batch in loader)

    n, seconds = timed(load_all)
    return n / seconds


def time_split(dataset, items: int) -> tuple[float, float, float]:
    """Seconds per clip spent decoding and transforming, and frames decoded per clip."""
    dec = tra = 0.0
    decoded = 0
    for i in range(items):
        rec = dataset.records[i % len(dataset.records)]
        (idx, frames), dec_s = timed(lambda: dataset._read(rec, np.random.default_rng(i)))
        _, tra_s = timed(lambda: dataset._views(frames, idx.shape[0], rec.label, i))
        dec += dec_s
        tra += tra_s
        if isinstance(dataset, DecodeAllDataset):
            with av.open(rec.path) as c:
                decoded += c.streams.video[0].frames
        else:
            with VideoReader(rec.path) as r:
                r.get_frames(idx.reshape(-1))
                decoded += r.frames_decoded
    return dec / items, tra / items, decoded / items


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default="a,b", help="a = 720p, b = 340x256 (default: a,b)")
    p.add_argument("--videos", type=int, default=4, help="videos per setting (default 4)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--gop", type=int, default=60, help="keyframe interval in frames "
                   "(default 60 = 2 s, common for web video; x264's default is 250)")
    p.add_argument("--clips", type=int, default=32, help="clips timed per method (default 32)")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--split-items", type=int, default=6, help="clips for the decode/transform "
                   "split (default 6)")
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "vidcls_bench_data"))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 videos of 4 s, 8 clips, 2 split items")
    args = p.parse_args()
    if args.quick:
        args.videos, args.seconds, args.clips, args.split_items = 2, 4.0, 8, 2
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cache = Path(args.cache_dir)
    settings = {"a": ("720p", 1280, 720), "b": ("340x256", 340, 256)}
    print(f"torch {torch.__version__}, PyAV {av.__version__}, {os.cpu_count()} CPUs; "
          f"{args.num_frames}-segment train clips, multi-scale crop 224, "
          f"DataLoader workers={args.workers}, batch={args.batch_size}")
    rows = []
    for key in args.settings.split(","):
        name, w, h = settings[key]
        print(f"({key}) {name}: {args.videos} videos x {args.seconds:g} s @ {args.fps} fps, "
              f"keyframe every {args.gop} frames", flush=True)
        paths = ensure_videos(cache, name, w, h, args)
        records = [VideoRecord(str(p), 0) for p in paths]
        kwargs = dict(num_frames=args.num_frames, train=True, seed=0,
                      transform=build_train_transform("multiscale", size=224, resize=256))
        ours, naive = VideoClipDataset(records, ["x"], **kwargs), DecodeAllDataset(
            records, ["x"], **kwargs)
        res = {}
        for label, ds in (("naive", naive), ("vidcls", ours)):
            cps = loader_throughput(ds, args.clips, args.workers, args.batch_size)
            dec, tra, frames = time_split(ds, args.split_items)
            res[label] = (cps, dec, tra, frames)
            print(f"  {label:>7}: {cps:7.2f} clips/s | per clip (1 process): decode "
                  f"{dec * 1000:7.1f} ms ({100 * dec / (dec + tra):4.1f} %), transform "
                  f"{tra * 1000:6.1f} ms ({100 * tra / (dec + tra):4.1f} %), "
                  f"{frames:6.1f} frames decoded", flush=True)
        speedup = res["vidcls"][0] / res["naive"][0]
        print(f"  speed-up vidcls / naive: {speedup:.2f}x", flush=True)
        rows.append((key, name, res, speedup))
    print("\nsummary (clips/s, same run):")
    for key, name, res, speedup in rows:
        print(f"  ({key}) {name:>8}: vidcls {res['vidcls'][0]:.2f}, naive {res['naive'][0]:.2f}"
              f" -> {speedup:.2f}x")


if __name__ == "__main__":
    main()
