"""``VideoClipDataset``: records -> sampled, decoded, transformed clips; ``collate_clips``.

Records come from an annotation format (``formats.build_records``). Each item samples frame
indices (``sampling``), decodes only those frames (``video.open_video``; or takes them from the
optional in-memory cache of decoded videos) and applies the transform (``transforms``).

Bad data never stops a run: a file that cannot be opened or decoded is logged once (path and
reason), replaced by the next record (``index + 1``, ``+ 2``, ... deterministically), and
reported in the sample's ``bad`` field so the training loop can aggregate the list in the main
process even when the loading happened in ``DataLoader`` workers (``bad_files.BadFileReport``).
Scoring must not replace (a replaced video would be scored with another video's clip), so
evaluation datasets use ``substitute_bad=False``: the item of a bad file comes back with
``clip=None`` and ``collate_clips`` leaves it out of the batch (listing it in ``skipped``).
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .formats import VideoRecord
from .sampling import sample_indices
from .transforms import to_clip_tensor
from .video import VideoDecodeError, open_video

logger = logging.getLogger("vidcls.data")


class VideoClipDataset(Dataset):
    """Clips of ``num_frames`` frames from ``records``, sampled, decoded and transformed.

    ``__getitem__(i)`` returns ``{"clip", "label", "index", "bad"}``:
      - ``clip``: ``uint8 (T, 3, H, W)`` for one view, ``(V, T, 3, H, W)`` for several
        (``V = clips x crops``, clip-major; ``num_clips`` clips, or 2 with ``twice``, and the
        transform's crops).
      - ``label``: ``int``, or a float multi-hot ``(num_classes,)`` tensor when any record has
        several labels.
      - ``index``: ``i`` (also when another sample was substituted).
      - ``bad``: ``"path: reason"`` for every file skipped to serve this item.

    A bad file is replaced by the next record (up to ``max_retries`` times). With
    ``substitute_bad=False`` (scoring), or when every replacement failed too, the item has
    ``clip=None``: ``collate_clips`` drops it from the batch. ``multi_label``: multi-hot float
    labels (BCE training, mAP); ``None`` = when any record has several labels.

    ``transform`` receives the decoded ``uint8 (T, H, W, 3)`` array of one clip; when it has a
    ``with_label(frames, label, rng)`` method (``TrainTransform``) that is used, so a flip can
    swap direction labels. All clips of one item share one augmentation draw. With
    ``max_retries=0`` a bad file raises ``VideoDecodeError`` instead. Randomness comes
    from a generator seeded by ``(seed, epoch, index, torch.initial_seed())``: reproducible for a
    given torch seed, different in every epoch and ``DataLoader`` worker; call ``set_epoch`` when
    loading in the main process.

    ``cache_mb > 0`` keeps every decoded video whole in memory until the next one would not fit
    in that many MB (per process); then the cache is closed, so no video is decoded whole again
    only to be thrown away. Small datasets trained for many epochs are decoded once, not every
    epoch.
    Items are identical with and without the cache. ``DataLoader`` workers get a copy of the
    cache as it is when they start, so with ``num_workers > 0`` call :meth:`fill_cache` first.
    """

    def __init__(self, records: Sequence[VideoRecord], classes: Sequence[str], *,
                 num_frames: int = 8, sampling: str = "segment", clip_len: int | None = None,
                 frame_interval: int = 1, train: bool = True,
                 transform: Callable | None = None, num_clips: int = 1, twice: bool = False,
                 filename_tmpl: str | None = None, start_index: int | None = None,
                 seed: int = 0, max_retries: int = 10, reader_options: dict | None = None,
                 cache_mb: float = 0.0, substitute_bad: bool = True,
                 multi_label: bool | None = None, source: str | None = None):
        if not records:
            raise ValueError("VideoClipDataset needs at least one record")
        if sampling not in ("segment", "dense"):
            raise ValueError(f"unknown sampling {sampling!r}; use 'segment' or 'dense'")
        if num_frames < 1 or num_clips < 1:
            raise ValueError(f"num_frames and num_clips must be >= 1, got {num_frames}, "
                             f"{num_clips}")
        self.records = list(records)
        self.classes = list(classes)
        self.num_frames = num_frames
        self.sampling = sampling
        self.clip_len = clip_len if clip_len is not None else num_frames
        self.frame_interval = frame_interval
        self.train = train
        self.transform = transform
        self.num_clips = num_clips
        self.twice = twice
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        self.seed = seed
        self.max_retries = max_retries
        self.reader_options = dict(reader_options or {})
        # Decoded whole videos kept in memory (path -> uint8 (N, H, W, 3)), up to cache_mb:
        # a small dataset trained for many epochs is then decoded once instead of every epoch.
        self.cache_mb = float(cache_mb)
        self._frame_cache: dict[str, np.ndarray] = {}
        self._cache_left = int(self.cache_mb * 2**20)  # bytes; 0 = no (more) caching
        self.epoch = 0
        self.substitute_bad = substitute_bad
        # where the records come from (an annotation file), for error messages
        self.source = source or "the dataset"
        self.multi_label = (any(isinstance(r.label, list) for r in self.records)
                            if multi_label is None else bool(multi_label))
        bad_label = next((r for r in self.records if any(
            not -1 <= x < len(self.classes) for x in (r.label if isinstance(r.label, list)
                                                      else [r.label]))), None)
        if bad_label is not None:
            raise ValueError(f"label {bad_label.label} of {bad_label.path} is outside the "
                             f"{len(self.classes)} classes")
        # Per-process bookkeeping (with workers, use the items' "bad" fields instead).
        self.bad_files: dict[str, str] = {}
        self.num_substitutions = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Vary the augmentation per epoch when loading in the main process."""
        self.epoch = int(epoch)

    def fill_cache(self) -> int:
        """Decode videos into the ``cache_mb`` cache until it is full; returns how many are
        cached. Bad files are left to ``__getitem__`` (skipped and reported there)."""
        rng = np.random.default_rng(0)
        for rec in self.records:
            if self._cache_left <= 0:
                break
            if rec.path not in self._frame_cache:
                try:
                    self._read(rec, rng)
                except VideoDecodeError:
                    continue
        return len(self._frame_cache)

    @property
    def labels(self) -> list:
        return [r.label for r in self.records]

    @property
    def num_files(self) -> int:
        """Distinct videos (a list may name one several times)."""
        return len({r.path for r in self.records})

    def _rng(self, index: int, purpose: int) -> np.random.Generator:
        """Independent streams for frame sampling (0) and augmentation (1) of one item."""
        return np.random.default_rng(
            [self.seed, self.epoch, index, torch.initial_seed() % (1 << 63), purpose])

    def _sample(self, total: int, rng: np.random.Generator) -> np.ndarray:
        return sample_indices(total, mode=self.sampling, num_frames=self.num_frames,
                              train=self.train, rng=rng, num_clips=self.num_clips,
                              twice=self.twice, clip_len=self.clip_len,
                              frame_interval=self.frame_interval)  # (views, T)

    def _read(self, rec: VideoRecord, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Decode the sampled frames: ``(views, T)`` indices and ``uint8 (views*T, H, W, 3)``."""
        cached = self._frame_cache.get(rec.path)
        if cached is not None:  # same indices as a decode would give: same rng, same length
            idx = self._sample(len(cached), rng)
            return idx, cached[idx.reshape(-1)]
        try:
            with open_video(rec.path, filename_tmpl=self.filename_tmpl,
                            start_index=self.start_index, num_frames=rec.num_frames,
                            **self.reader_options) as reader:
                total = reader.num_frames
                idx = self._sample(total, rng)
                if self._cache_left > 0:
                    everything = reader.get_frames(np.arange(total))  # (N, H, W, 3)
                    if everything.nbytes <= self._cache_left:
                        self._frame_cache[rec.path] = everything
                        self._cache_left -= everything.nbytes
                    else:  # full: stop decoding whole videos
                        self._cache_left = 0
                    return idx, everything[idx.reshape(-1)]
                return idx, reader.get_frames(idx.reshape(-1))  # (views*T, H, W, 3)
        except VideoDecodeError:
            raise
        except (OSError, ValueError, RuntimeError, IndexError, EOFError, MemoryError) as e:
            raise VideoDecodeError(rec.path, f"{type(e).__name__}: {e}".splitlines()[0][:200]
                                   ) from None

    def _label(self, label):
        if not self.multi_label:
            return int(label)
        hot = torch.zeros(len(self.classes), dtype=torch.float32)  # (K,)
        hot[torch.as_tensor(label if isinstance(label, list) else [label])] = 1.0
        return hot

    def _views(self, frames: np.ndarray, views: int, label, index: int):
        """Transform each clip; returns ``(V, T, 3, h, w)`` uint8 and the (maybe swapped) label."""
        clips = frames.reshape(views, -1, *frames.shape[1:])  # (views, T, H, W, 3)
        out = []
        for c in range(views):
            if self.transform is None:
                v = to_clip_tensor(clips[c])  # (T, 3, H, W)
            elif hasattr(self.transform, "with_label"):
                # same seed per clip: one augmentation draw for the whole item
                v, new_label = self.transform.with_label(clips[c], label, self._rng(index, 1))
            else:
                v = self.transform(clips[c])
            out.append(v if v.dim() == 5 else v.unsqueeze(0))  # (crops, T, 3, h, w)
        if self.transform is not None and hasattr(self.transform, "with_label"):
            label = new_label
        return torch.cat(out), label  # (V, T, 3, h, w)

    def _note_bad(self, rec: VideoRecord, reason: str, index: int, substitute: int | None
                  ) -> str:
        if substitute is not None:
            self.num_substitutions += 1
        if rec.path not in self.bad_files:
            self.bad_files[rec.path] = reason
            if substitute is None:
                logger.warning("bad video %s: %s", rec.path, reason)
            else:
                logger.warning("bad video %s: %s; using sample %d instead of %d", rec.path,
                               reason, substitute, index)
        return f"{rec.path}: {reason}"

    def __getitem__(self, index: int) -> dict:
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        index = index % n
        bad: list[str] = []
        attempts = min(self.max_retries, n - 1) + 1 if self.substitute_bad else 1
        for attempt in range(attempts):
            j = (index + attempt) % n
            rec = self.records[j]
            try:
                idx, frames = self._read(rec, self._rng(index, 0))
            except VideoDecodeError as e:
                last = attempt == attempts - 1
                bad.append(self._note_bad(rec, e.reason, index, None if last else (j + 1) % n))
                if self.max_retries == 0:
                    raise  # no substitution wanted (prediction on given files)
                continue
            clip, label = self._views(frames, idx.shape[0], rec.label, index)
            if clip.shape[0] == 1:
                clip = clip[0]  # (T, 3, h, w)
            return {"clip": clip, "label": self._label(label), "index": index, "bad": bad}
        # nothing readable to serve this item: it is left out of its batch (collate_clips)
        return {"clip": None, "label": self._label(self.records[index].label), "index": index,
                "bad": bad}


def collate_clips(batch: list[dict]) -> dict:
    """``DataLoader`` collate: stack clips and labels, concatenate the ``bad`` lists.

    Items without a clip (unreadable files, see ``VideoClipDataset``) are left out; their
    indices are listed in ``skipped``. When no item has a clip, ``clip`` and ``label`` are
    ``None`` and ``index`` is empty.
    """
    kept = [b for b in batch if b["clip"] is not None]
    out = {"skipped": [b["index"] for b in batch if b["clip"] is None],
           "bad": [s for b in batch for s in b["bad"]],
           "index": torch.tensor([b["index"] for b in kept], dtype=torch.long)}
    if not kept:
        return {**out, "clip": None, "label": None}
    shapes = {tuple(b["clip"].shape) for b in kept}
    if len(shapes) > 1:
        raise ValueError(f"clips in a batch have different shapes {sorted(shapes)}; give the "
                         "dataset a transform that crops to a fixed size")
    labels = [b["label"] for b in kept]
    return {
        **out,
        "clip": torch.stack([b["clip"] for b in kept]),  # (B, [V,] T, 3, H, W)
        "label": torch.stack(labels) if isinstance(labels[0], torch.Tensor)
        else torch.tensor(labels, dtype=torch.long),
    }
