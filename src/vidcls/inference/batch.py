"""Predict a whole video library: ``vidcls predict --list FILE|DIR --output preds.jsonl``.

Why it is not a loop over :func:`vidcls.inference.predict.predict`: a library of millions of
videos needs decoding in DataLoader worker processes while the model runs, batches of clips
per forward pass, and a run that can stop at any time and go on. So:

* one JSON line per video, flushed as it is written: ``{"video", "predictions": [...]}`` or
  ``{"video", "error"}`` for a file that cannot be decoded (never fatal);
* a rerun skips every video already in the output (resumable after a crash or Ctrl-C);
* under ``torchrun`` each rank takes every ``world_size``-th remaining video and writes its own
  ``OUTPUT.rankN.part``; rank 0 appends the parts to the output in the input order once all
  ranks are done, so N processes give the same lines as one.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from vidcls.data.formats import split_list_line
from vidcls.data.transforms import normalize
from vidcls.data.video import VIDEO_EXTENSIONS, VideoDecodeError
from vidcls.engine.distributed import barrier, cleanup_distributed, init_distributed
from vidcls.engine.inference import forward_views
from vidcls.engine.runtime import autocast_context, progress_bar
from vidcls.inference.predict import Predictor

__all__ = ["library_videos", "predict_library"]


def library_videos(source: str | os.PathLike) -> list[str]:
    """The videos of ``source``: every video file under a folder (sorted), or the paths of a
    list file (one per line; trailing label columns, as in training lists, are ignored;
    relative paths are relative to the list's folder)."""
    src = Path(source)
    if src.is_dir():
        return sorted(str(p) for p in src.rglob("*")
                      if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not src.is_file():
        raise FileNotFoundError(f"--list {source}: no such file or folder")
    videos = []
    for lineno, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        path, _ = split_list_line(line, 0, where=f"{src}:{lineno}", exists=lambda p: (
            (src.parent / p).exists() or Path(p).exists()))
        videos.append(str(path if Path(path).is_absolute() else src.parent / path))
    if not videos:
        raise ValueError(f"--list {source} names no video")
    return videos


def _done(path: Path) -> set[str]:
    """Videos that already have a line in ``path`` (a torn last line is ignored)."""
    done = set()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["video"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


class _Clips(Dataset):
    """``(position, uint8 clip (V, T, 3, H, W) or None, error or None)`` per video: a file that
    cannot be decoded becomes an error entry, never a substitute clip."""

    def __init__(self, predictor: Predictor, videos: Sequence[str], num_clips: int,
                 num_crops: int):
        self.videos = list(videos)
        self.inner = predictor.dataset(self.videos, num_clips=num_clips, num_crops=num_crops)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int):
        try:
            clip = self.inner[i]["clip"]
        except (VideoDecodeError, RuntimeError, OSError) as err:
            return i, None, str(getattr(err, "reason", err))
        return i, clip if clip.dim() == 5 else clip[None], None  # (V, T, 3, H, W)


def _collate(items):
    return items


def predict_library(source: str | os.PathLike, checkpoint: str | Path, output: str | Path, *,
                    top_k: int = 5, batch_size: int = 8, workers: int = 2, num_clips: int = 1,
                    num_crops: int = 1, device: str = "cpu", precision: str = "auto",
                    progress: bool = True) -> dict:
    """Predict every video of ``source`` into the JSON-lines file ``output`` (see the module
    docstring); returns ``{"videos", "done_before", "written", "errors", "seconds"}`` for this
    process."""
    out = Path(output)
    videos = library_videos(source)
    start = time.perf_counter()
    info = init_distributed(torch.device("cuda" if str(device).startswith("cuda") else "cpu")
                            .type)
    part = out.with_name(f"{out.name}.rank{info.rank}.part") if info.enabled else out
    try:
        done = _done(out) | (_done(part) if part != out else set())
        todo = [v for v in videos if v not in done][info.rank::info.world_size]
        predictor = Predictor(checkpoint, device=device, precision=precision)
        written, errors = _run(predictor, todo, part, top_k=top_k, batch_size=batch_size,
                               workers=workers, num_clips=num_clips, num_crops=num_crops,
                               progress=progress and info.is_main)
        if info.enabled:
            barrier(info)
            if info.is_main:
                _merge(out, videos, info.world_size)
            barrier(info)
    finally:
        cleanup_distributed()
    return {"videos": len(videos), "done_before": len(done), "written": written,
            "errors": errors, "seconds": time.perf_counter() - start, "output": str(out)}


def _run(predictor: Predictor, todo: list[str], part: Path, *, top_k: int, batch_size: int,
         workers: int, num_clips: int, num_crops: int, progress: bool) -> tuple[int, int]:
    if not todo:
        return 0, 0
    part.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(part)
    loader = DataLoader(_Clips(predictor, todo, num_clips, num_crops), batch_size=batch_size,
                        num_workers=workers, collate_fn=_collate)
    k = max(1, min(top_k, len(predictor.classes)))
    bar = progress_bar(total=len(todo), desc="predict", enabled=progress)
    if bar is not None:
        bar.unit = "video"
    written = errors = 0
    data_log = logging.getLogger("vidcls.data")  # errors go to the output, not the log
    level = data_log.level
    data_log.setLevel(logging.ERROR)
    try:
        with open(part, "a", encoding="utf-8") as f:
            for items in loader:
                lines = _predict_batch(predictor, items, todo, k)
                for line in lines:
                    f.write(json.dumps(line) + "\n")
                    errors += "error" in line
                f.flush()
                written += len(lines)
                if bar is not None:
                    bar.update(len(lines))
    finally:
        data_log.setLevel(level)
        if bar is not None:
            bar.close()
    return written, errors


@torch.no_grad()
def _predict_batch(predictor: Predictor, items, todo: list[str], k: int) -> list[dict]:
    """One JSON record per item, in the batch's order: predictions for the decoded clips (one
    forward pass for all of them), errors for the others."""
    good = [(i, clip) for i, clip, _ in items if clip is not None]
    probs = {}
    if good:
        x = torch.stack([clip for _, clip in good]).to(predictor.device)  # (B, V, T, 3, H, W)
        x = normalize(x, predictor.mean, predictor.std)
        with autocast_context(predictor.device, predictor.precision):
            p = forward_views(predictor.model, x, multi_label=predictor.multi_label)  # (B, K)
        probs = dict(zip((i for i, _ in good), p.float().cpu()))
    records = []
    for i, _, error in items:
        if error is not None:
            records.append({"video": todo[i], "error": error})
            continue
        top_p, top_i = probs[i].topk(k)
        records.append({"video": todo[i], "predictions": [
            {"label": predictor.classes[int(j)], "index": int(j), "probability": float(q)}
            for q, j in zip(top_p, top_i)]})
    return records


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line a crash left half-written, so the next line starts on its own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _merge(out: Path, videos: list[str], world_size: int) -> None:
    """Append the ranks' part files to ``out`` in the order of ``videos``, then remove them."""
    parts = [out.with_name(f"{out.name}.rank{r}.part") for r in range(world_size)]
    lines = {}
    for part in parts:
        if part.is_file():
            for line in part.read_text(encoding="utf-8").splitlines():
                try:
                    lines[json.loads(line)["video"]] = line
                except (ValueError, KeyError, TypeError):
                    continue
    done = _done(out)
    _drop_torn_tail(out)
    with open(out, "a", encoding="utf-8") as f:
        for video in videos:
            if video in lines and video not in done:
                f.write(lines[video] + "\n")
    for part in parts:
        part.unlink(missing_ok=True)
