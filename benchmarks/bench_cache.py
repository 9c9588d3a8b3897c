"""Decoded-frame cache (``data.cache_mb``): data-loading time per epoch with and without it.

A small dataset trained for many epochs (the accuracy benchmark's synthetic videos, a few
hundred short clips) is decoded again in every epoch without the cache; with it, each video is
decoded once, in the first epoch, and later epochs only sample, crop and resize. This script
times the training loader (TSN segment sampling, multi-scale crop, ``workers=0`` as in the
benchmark runs) over ``--epochs`` epochs of a built-in synthetic dataset, both ways in the same
run, and prints the ratio for the epochs after the first. It also checks that both ways give
identical clips.

    python benchmarks/bench_cache.py                       # 32x32 clips, 160 videos (the small preset's)
    python benchmarks/bench_cache.py --size 64 --videos-per-class 100
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vidcls.data.dataset import VideoClipDataset, collate_clips
from vidcls.data.formats import VideoRecord
from vidcls.data.synthetic import generate
from vidcls.data.transforms import build_train_transform
from vidcls.repro.timing import timed


def epoch_times(records, classes: list[str], cache_mb: float, epochs: int, size: int,
                frames: int) -> tuple[list[float], torch.Tensor]:
    transform = build_train_transform("multiscale", size=size, resize=size)
    ds = VideoClipDataset(records, classes, num_frames=frames, train=True,
                          transform=transform, seed=0, cache_mb=cache_mb)
    times = []
    first: list[torch.Tensor] = []  # the first batch's clips, to compare both ways

    def one_epoch(loader) -> None:
        for batch in loader:
            if not first:
                first.append(batch["clip"].clone())

    for epoch in range(epochs):
        ds.set_epoch(epoch)
        torch.manual_seed(epoch)
        loader = DataLoader(ds, batch_size=8, shuffle=False, num_workers=0,
                            collate_fn=collate_clips)
        times.append(timed(lambda: one_epoch(loader))[1])
    return times, first[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--videos-per-class", type=int, default=40)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--frames", type=int, default=8, help="frames per clip (T)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "vidcls_bench_cache"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data_dir) / f"temporal_{args.size}_{args.videos_per_class}"
    info = generate(root, "temporal", num_classes=args.classes, size=args.size,
                    videos_per_class=args.videos_per_class, val_fraction=0.0)
    records = [VideoRecord(str(root / line.rsplit(" ", 1)[0]), int(line.rsplit(" ", 1)[1]))
               for line in Path(info["train_list"]).read_text().split("\n") if line.strip()]
    classes = info["classes"]
    plain, clip_plain = epoch_times(records, classes, 0.0, args.epochs, args.size, args.frames)
    cached, clip_cached = epoch_times(records, classes, 4096.0, args.epochs, args.size,
                                      args.frames)
    assert torch.equal(clip_plain, clip_cached), "the cache changed the clips"
    print(f"{len(records)} videos of {args.size}x{args.size}, {args.frames}-frame clips, "
          f"{args.epochs} epochs, {args.threads} thread(s)")
    print(f"{'epoch':>6}{'decode every epoch (s)':>25}{'cache_mb (s)':>15}")
    for i, (a, b) in enumerate(zip(plain, cached)):
        print(f"{i + 1:>6}{a:>25.2f}{b:>15.2f}")
    later_plain, later_cached = sum(plain[1:]), sum(cached[1:])
    print(f"epochs 2-{args.epochs}: cached loader {later_plain / later_cached:.1f}x faster; "
          f"first epoch (fills the cache) {cached[0] / plain[0]:.2f}x the uncached time")


if __name__ == "__main__":
    main()
