"""Annotation formats -> ``(records, classes)``; ``VideoClipDataset`` turns records into clips.

``build_records(fmt, root=..., ann_file=None, split="train", **options)`` reads one of:

==========  =================================================================================
folder      ``root/[split/]<class>/<video or frame folder>``; classes = sorted folder names
list        ``path label [label ...]`` per line (mmaction2 VideoDataset; several labels =
            multi-label); ann_file default ``root/{split}.txt``; class names from
            ``classes.txt`` next to it (else "0", "1", ...)
rawframes   ``frame_dir num_frames label [label ...]`` (TSM repo / mmaction2 RawframeDataset);
            ann_file default ``root/{split}.txt`` or ``root/{split}_videofolder.txt``
kinetics    CSV ``label,youtube_id,time_start,time_end,split``; clips named
            ``{youtube_id}_{start:06d}_{end:06d}.mp4``, flat or in ``<label>/`` folders under
            ``root/{split}/`` (the kinetics-dataset download layout), ``root/videos`` or root;
            classes = sorted labels of ``train.csv``
sthv2       Something-Something V2: ``labels.json`` + ``train.json`` / ``validation.json``;
            class = the template with brackets stripped; videos ``{id}.webm`` in
            ``root/20bn-something-something-v2``, ``root/videos`` or root
ucf101      ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` (``split_id=N``, default 1)
hmdb51      ``<class>_test_split{N}.txt`` (1 = train, 2 = test); videos ``<class>/<name>.avi``
jester      ``jester-v1-labels.csv`` + ``jester-v1-{train,validation}.csv`` (``id;label``);
            frame folders ``root/20bn-jester-v1/{id}/00001.jpg``
==========  =================================================================================

``split`` is ``"train"``, ``"val"`` (aliases ``"validation"``, ``"validate"``) or ``"test"``.
Paths are resolved against ``root`` unless absolute; ``data_prefix=`` (list, rawframes) or
``video_dir=`` (kinetics, sthv2, ucf101, hmdb51, jester) override where media files live.

Bad data never stops a run: a file that cannot be opened or decoded is logged once (path and
reason), replaced by the next record (``index + 1``, ``+ 2``, ... deterministically), and
reported in the sample's ``bad`` field so the training loop can aggregate the list in the main
process even when the loading happened in ``DataLoader`` workers (``BadFileReport``).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .sampling import sample_indices
from .transforms import to_clip_tensor
from .video import VIDEO_EXTENSIONS, VideoDecodeError, open_video

logger = logging.getLogger("vidcls.data")

FORMATS = ("folder", "list", "rawframes", "kinetics", "sthv2", "ucf101", "hmdb51", "jester")


@dataclass
class VideoRecord:
    """One sample: a video file (or frame folder), its label(s), and its frame count if known."""

    path: str
    label: int | list[int]
    num_frames: int | None = None  # known for rawframe lists; counted on open otherwise


# --------------------------------------------------------------------------- helpers
def _split_names(split: str) -> tuple[str, ...]:
    s = split.lower()
    if s == "train":
        return ("train",)
    if s in ("val", "valid", "validation", "validate"):
        return ("val", "validation", "validate")
    if s == "test":
        return ("test",)
    raise ValueError(f"unknown split {split!r}; use 'train', 'val' or 'test'")


def _first_existing(candidates: Iterable[Path], what: str, hint: str = "") -> Path:
    candidates = list(candidates)
    for c in candidates:
        if c.exists():
            return c
    tried = ", ".join(str(c) for c in candidates[:6])
    raise FileNotFoundError(f"{what} not found (tried {tried}){hint}")


def _resolve(base: Path, p: str) -> str:
    return p if os.path.isabs(p) else str(base / p)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1)
                if line.strip() and not line.lstrip().startswith("#")]


def _parse_labels(tokens: Sequence[str], path: Path, lineno: int) -> int | list[int]:
    if not tokens:
        raise ValueError(f"{path}:{lineno}: no label after the path (expected 'path label')")
    try:
        labels = [int(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{path}:{lineno}: labels must be integers, got {' '.join(tokens)!r}"
                         ) from None
    return labels[0] if len(labels) == 1 else labels


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line (``classes.txt``); an optional leading index is dropped
    (``"1 ApplyEyeMakeup"`` / ``"0,abseiling"``)."""
    names = []
    for _, line in _read_lines(Path(path)):
        m = re.match(r"^\d+[\s,;]+(.+)$", line)
        names.append(m.group(1).strip() if m else line)
    return names


def _classes_for_list(ann: Path, root: Path, options: dict, max_label: int) -> list[str]:
    if options.get("classes") is not None:
        return list(options["classes"])
    candidates = [Path(options["classes_file"])] if options.get("classes_file") else [
        ann.parent / "classes.txt", root / "classes.txt"]
    for c in candidates:
        if c.is_file():
            classes = read_class_names(c)
            if max_label >= len(classes):
                raise ValueError(f"{ann} uses label {max_label} but {c} lists only "
                                 f"{len(classes)} classes")
            return classes
    return [str(i) for i in range(max_label + 1)]


def _max_label(records: list[VideoRecord]) -> int:
    out = -1
    for r in records:
        out = max([out, *(r.label if isinstance(r.label, list) else [r.label])])
    return out


# --------------------------------------------------------------------------- formats
def _folder(root: Path, ann_file, split: str, options: dict):
    base = root
    for name in _split_names(split):
        if (root / name).is_dir():
            base = root / name
            break
    exts = tuple(options.get("extensions", VIDEO_EXTENSIONS))
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{base} has no class folders (expected {base}/<class>/<video>)")
    records = []
    for label, name in enumerate(classes):
        for item in sorted((base / name).iterdir()):
            if item.name.startswith("."):
                continue
            if item.is_dir() or item.suffix.lower() in exts:
                records.append(VideoRecord(str(item), label))  # frame folders: num_frames=None
    return records, classes


def _list(root: Path, ann_file, split: str, options: dict):
    ann = Path(ann_file) if ann_file else _first_existing(
        [root / f"{n}{suffix}" for n in _split_names(split)
         for suffix in (".txt", "list.txt", "_list.txt")], f"{split} list file",
        " (pass ann_file=)")
    prefix = Path(options.get("data_prefix", root))
    records = []
    for lineno, line in _read_lines(ann):
        tokens = line.split()
        records.append(VideoRecord(_resolve(prefix, tokens[0]),
                                   _parse_labels(tokens[1:], ann, lineno)))
    return records, _classes_for_list(ann, root, options, _max_label(records))


def _rawframes(root: Path, ann_file, split: str, options: dict):
    ann = Path(ann_file) if ann_file else _first_existing(
        [root / f"{n}{suffix}" for n in _split_names(split)
         for suffix in (".txt", "_videofolder.txt", "_list_rawframes.txt")],
        f"{split} rawframe list", " (pass ann_file=)")
    prefix = Path(options.get("data_prefix", root))
    records = []
    for lineno, line in _read_lines(ann):
        tokens = line.split()
        if len(tokens) < 3:
            raise ValueError(f"{ann}:{lineno}: expected 'frame_dir num_frames label', got {line!r}")
        try:
            n = int(tokens[1])
        except ValueError:
            raise ValueError(f"{ann}:{lineno}: num_frames must be an integer, got {tokens[1]!r}"
                             ) from None
        records.append(VideoRecord(_resolve(prefix, tokens[0]),
                                   _parse_labels(tokens[2:], ann, lineno), num_frames=n))
    return records, _classes_for_list(ann, root, options, _max_label(records))


def _kinetics_csv(root: Path, split: str) -> Path:
    names = {"train": ("train",), "test": ("test",)}.get(
        split, ("validate", "val", "validation"))
    return _first_existing([d / f"{n}.csv" for d in (root, root / "annotations") for n in names],
                           f"Kinetics {split} CSV", " (pass ann_file=)")


def _kinetics(root: Path, ann_file, split: str, options: dict):
    split_key = _split_names(split)[0]
    ann = Path(ann_file) if ann_file else _kinetics_csv(root, split_key)
    with open(ann, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "youtube_id" not in rows[0]:
        raise ValueError(f"{ann}: not a Kinetics CSV (header needs youtube_id, time_start, "
                         f"time_end; got {list(rows[0])})")
    if options.get("classes") is not None:
        classes = list(options["classes"])
    elif options.get("classes_file"):
        classes = read_class_names(options["classes_file"])
    else:
        try:  # the class list is that of the training split, whatever split we read
            train_csv = _kinetics_csv(root, "train") if split_key != "train" else ann
            with open(train_csv, newline="", encoding="utf-8") as f:
                classes = sorted({r["label"] for r in csv.DictReader(f) if r.get("label")})
        except FileNotFoundError:
            classes = sorted({r["label"] for r in rows if r.get("label")})
    index = {c: i for i, c in enumerate(classes)}
    if options.get("video_dir"):
        video_dir = Path(options["video_dir"])
    else:
        video_dir = root
        for d in [root / n for n in _split_names(split_key)] + [root / "videos"]:
            if d.is_dir():
                video_dir = d
                break
    ext = options.get("extension", ".mp4")
    records = []
    for row in rows:
        label = row.get("label") or ""
        if label and label not in index:
            raise ValueError(f"{ann}: label {label!r} is not in the class list ({len(classes)} "
                             "classes from train.csv)")
        name = (f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_"
                f"{int(float(row['time_end'])):06d}{ext}")
        path = video_dir / name
        if label and not path.exists():  # class-folder layout, with or without underscores
            for sub in (label, label.replace(" ", "_")):
                if (video_dir / sub / name).exists():
                    path = video_dir / sub / name
                    break
        records.append(VideoRecord(str(path), index[label] if label else -1))
    return records, classes


def _sthv2(root: Path, ann_file, split: str, options: dict):
    split_key = _split_names(split)[0]
    dirs = (root, root / "labels", root / "annotations")
    labels_file = Path(options["labels_file"]) if options.get("labels_file") else \
        _first_existing([d / n for d in dirs for n in
                         ("labels.json", "something-something-v2-labels.json")],
                        "Something-Something V2 labels.json")
    names = {"train": ("train",), "val": ("validation",), "test": ("test",)}[split_key]
    ann = Path(ann_file) if ann_file else _first_existing(
        [d / f"{p}{n}.json" for d in dirs for n in names
         for p in ("", "something-something-v2-")], f"Something-Something V2 {split} JSON")
    with open(labels_file, encoding="utf-8") as f:
        label_map = {k: int(v) for k, v in json.load(f).items()}
    classes = [name for name, _ in sorted(label_map.items(), key=lambda kv: kv[1])]
    if options.get("video_dir"):
        video_dir = Path(options["video_dir"])
    else:
        video_dir = next((d for d in (root / "20bn-something-something-v2", root / "videos")
                          if d.is_dir()), root)
    rawframes = bool(options.get("rawframes", False))
    ext = options.get("extension", ".webm")
    with open(ann, encoding="utf-8") as f:
        items = json.load(f)
    records = []
    for item in items:
        label = -1
        if "template" in item:
            name = item["template"].replace("[", "").replace("]", "")
            if name not in label_map:
                raise ValueError(f"{ann}: template {item['template']!r} (class {name!r}) is not "
                                 f"in {labels_file}")
            label = label_map[name]
        vid = str(item["id"])
        records.append(VideoRecord(str(video_dir / (vid if rawframes else vid + ext)), label))
    return records, classes


def _ucf101(root: Path, ann_file, split: str, options: dict):
    split_key = _split_names(split)[0]
    sid = int(options.get("split_id", 1))
    if sid not in (1, 2, 3):
        raise ValueError(f"UCF101 split_id must be 1, 2 or 3, got {sid}")
    ann_dir = next((d for d in (root / "ucfTrainTestlist", root / "annotations")
                    if d.is_dir()), root)
    class_ind = _first_existing([ann_dir / "classInd.txt"], "UCF101 classInd.txt")
    classes = []
    for _, line in _read_lines(class_ind):
        idx, name = line.split(maxsplit=1)
        if int(idx) != len(classes) + 1:
            raise ValueError(f"{class_ind}: expected class index {len(classes) + 1}, got {idx}")
        classes.append(name.strip())
    index = {c.lower(): i for i, c in enumerate(classes)}
    kind = "trainlist" if split_key == "train" else "testlist"
    ann = Path(ann_file) if ann_file else _first_existing(
        [ann_dir / f"{kind}{sid:02d}.txt"], f"UCF101 {kind}{sid:02d}.txt")
    video_dir = Path(options["video_dir"]) if options.get("video_dir") else next(
        (d for d in (root / "UCF-101", root / "UCF101", root / "videos") if d.is_dir()), root)
    records = []
    for lineno, line in _read_lines(ann):
        tokens = line.split()
        rel = tokens[0]
        if len(tokens) > 1:
            label = int(tokens[1]) - 1  # trainlist labels are 1-based
        else:  # testlist: the class is the folder name
            folder = rel.replace("\\", "/").split("/")[0].lower()
            if folder not in index:
                raise ValueError(f"{ann}:{lineno}: class folder {folder!r} not in classInd.txt")
            label = index[folder]
        records.append(VideoRecord(str(video_dir / rel), label))
    return records, classes


def _hmdb51(root: Path, ann_file, split: str, options: dict):
    split_key = _split_names(split)[0]
    sid = int(options.get("split_id", 1))
    split_dir = Path(ann_file) if ann_file else next(
        (d for d in (root / "testTrainMulti_7030_splits", root / "splits", root / "annotations")
         if d.is_dir()), root)
    files = sorted(split_dir.glob(f"*_test_split{sid}.txt"))
    if not files:
        raise FileNotFoundError(f"no HMDB51 split files {split_dir}/<class>_test_split{sid}.txt")
    classes = [f.name[: -len(f"_test_split{sid}.txt")] for f in files]
    video_dir = Path(options["video_dir"]) if options.get("video_dir") else next(
        (d for d in (root / "hmdb51", root / "videos") if d.is_dir()), root)
    wanted = "1" if split_key == "train" else "2"  # 0 = not used in this split
    records = []
    for label, (name, f) in enumerate(zip(classes, files)):
        for lineno, line in _read_lines(f):
            tokens = line.split()
            if len(tokens) != 2 or tokens[1] not in "012":
                raise ValueError(f"{f}:{lineno}: expected 'video.avi 0|1|2', got {line!r}")
            if tokens[1] == wanted:
                records.append(VideoRecord(str(video_dir / name / tokens[0]), label))
    return records, classes


def _jester(root: Path, ann_file, split: str, options: dict):
    split_key = _split_names(split)[0]
    labels_file = Path(options["labels_file"]) if options.get("labels_file") else \
        _first_existing([root / "jester-v1-labels.csv", root / "labels.csv"],
                        "Jester labels CSV")
    classes = [line for _, line in _read_lines(labels_file)]
    index = {c: i for i, c in enumerate(classes)}
    names = {"train": ("train",), "val": ("validation",), "test": ("test",)}[split_key]
    ann = Path(ann_file) if ann_file else _first_existing(
        [root / f"{p}{n}.csv" for n in names for p in ("jester-v1-", "")], f"Jester {split} CSV")
    frame_dir = Path(options["video_dir"]) if options.get("video_dir") else next(
        (d for d in (root / "20bn-jester-v1", root / "frames") if d.is_dir()), root)
    records = []
    for lineno, line in _read_lines(ann):
        vid, _, label = line.partition(";")
        if label and label not in index:
            raise ValueError(f"{ann}:{lineno}: label {label!r} not in {labels_file}")
        records.append(VideoRecord(str(frame_dir / vid.strip()), index[label] if label else -1))
    return records, classes


_BUILDERS: dict[str, Callable] = {"folder": _folder, "list": _list, "rawframes": _rawframes,
                                  "kinetics": _kinetics, "sthv2": _sthv2, "ucf101": _ucf101,
                                  "hmdb51": _hmdb51, "jester": _jester}


def build_records(fmt: str, *, root: str | os.PathLike, ann_file: str | os.PathLike | None = None,
                  split: str = "train", **fmt_options: Any
                  ) -> tuple[list[VideoRecord], list[str]]:
    """Read a dataset's annotations: ``(records, class names)``. See the module docstring."""
    if fmt not in _BUILDERS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    records, classes = _BUILDERS[fmt](root, ann_file, split, dict(fmt_options))
    if not records:
        raise ValueError(f"{fmt} dataset at {root} (split {split!r}) has no samples")
    return records, classes


def detect_format(root: str | os.PathLike) -> str:
    """Guess the annotation format of a dataset folder from the files it contains."""
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"dataset root {r} is not a directory")

    def has(*names):
        return any((r / n).exists() for n in names)

    if has("labels.json", "something-something-v2-labels.json", "labels/labels.json"):
        return "sthv2"
    if has("jester-v1-labels.csv"):
        return "jester"
    if has("classInd.txt", "ucfTrainTestlist/classInd.txt"):
        return "ucf101"
    if has("testTrainMulti_7030_splits") or list(r.glob("*_test_split1.txt")):
        return "hmdb51"
    if has("train.csv", "annotations/train.csv", "validate.csv", "annotations/validate.csv"):
        return "kinetics"
    for name in ("train.txt", "val.txt", "train_videofolder.txt"):
        if (r / name).is_file():
            lines = _read_lines(r / name)
            tokens = lines[0][1].split() if lines else []
            if name.endswith("videofolder.txt") or (
                    len(tokens) >= 3 and (r / tokens[0]).is_dir()):
                return "rawframes"
            return "list"
    return "folder"


def parse_dataset_spec(spec: str) -> tuple[str, str, str | None]:
    """``"FORMAT:ROOT"``, a dataset folder, or a list file -> ``(format, root, ann_file)``.

    ``"list:data/synth"``, ``"ucf101:/data/UCF101"``, ``"data/synth"`` (format detected) or
    ``"data/synth/val.txt"`` (a list file; root = its folder).
    """
    fmt, sep, rest = spec.partition(":")
    if sep and fmt in _BUILDERS:
        return fmt, rest, None
    p = Path(spec)
    if p.is_file():
        lines = _read_lines(p)
        tokens = lines[0][1].split() if lines else []
        fmt = "rawframes" if len(tokens) >= 3 and (p.parent / tokens[0]).is_dir() else "list"
        return fmt, str(p.parent), str(p)
    return detect_format(p), spec, None


# --------------------------------------------------------------------------- dataset
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

    ``transform`` receives the decoded ``uint8 (T, H, W, 3)`` array of one clip; when it has a
    ``with_label(frames, label, rng)`` method (``TrainTransform``) that is used, so a flip can
    swap direction labels. All clips of one item share one augmentation draw. With
    ``max_retries=0`` a bad file raises ``VideoDecodeError`` instead of being replaced. Randomness comes
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
                 cache_mb: float = 0.0):
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
        self.multi_label = any(isinstance(r.label, list) for r in self.records)
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
        attempts = min(self.max_retries, n - 1) + 1
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
        raise RuntimeError(f"{len(bad)} bad samples in a row from index {index} (last: "
                           f"{bad[-1]}); check the dataset with `vidcls data check`")


def collate_clips(batch: list[dict]) -> dict:
    """``DataLoader`` collate: stack clips and labels, concatenate the ``bad`` lists."""
    shapes = {tuple(b["clip"].shape) for b in batch}
    if len(shapes) > 1:
        raise ValueError(f"clips in a batch have different shapes {sorted(shapes)}; give the "
                         "dataset a transform that crops to a fixed size")
    labels = [b["label"] for b in batch]
    return {
        "clip": torch.stack([b["clip"] for b in batch]),  # (B, [V,] T, 3, H, W)
        "label": torch.stack(labels) if isinstance(labels[0], torch.Tensor)
        else torch.tensor(labels, dtype=torch.long),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "bad": [s for b in batch for s in b["bad"]],
    }


class BadFileReport:
    """Aggregates the ``bad`` entries of batches (from any worker) into one report per epoch.

    >>> report = BadFileReport()
    >>> for batch in loader: report.update(batch); ...
    >>> report.log()  # "2 bad files replaced 5 times: ..."
    """

    def __init__(self):
        self.files: dict[str, str] = {}  # path -> reason (first seen)
        self.substitutions = 0  # every replacement, including repeats of the same file
        self.checked = 0  # files looked at (``vidcls data check``)

    def add(self, path: str, reason: str) -> None:
        self.substitutions += 1
        self.files.setdefault(str(path), reason)

    def update(self, bad) -> "BadFileReport":
        """Add a batch dict (its ``"bad"`` list), a list of ``"path: reason"`` strings or of
        ``(path, reason)`` pairs, or another report."""
        if isinstance(bad, BadFileReport):
            self.substitutions += bad.substitutions
            self.checked += bad.checked
            for p, r in bad.files.items():
                self.files.setdefault(p, r)
            return self
        if isinstance(bad, dict):
            bad = bad.get("bad", [])
        for item in bad:
            if isinstance(item, str):
                path, _, reason = item.partition(": ")
            else:
                path, reason = item
            self.add(path, reason)
        return self

    def __len__(self) -> int:
        return len(self.files)

    def summary(self, limit: int | None = 20) -> str:
        if not self.files:
            return "no bad files" + (f" ({self.checked} checked)" if self.checked else "")
        head = f"{len(self.files)} bad file{'s' * (len(self.files) != 1)}"
        if self.checked:
            head += f" of {self.checked} checked"
        if self.substitutions > len(self.files):
            head += f", replaced {self.substitutions} times"
        items = sorted(self.files.items())
        lines = [f"  {p}: {r}" for p, r in items[:limit]]
        if limit is not None and len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
        return head + ":\n" + "\n".join(lines)

    def log(self, log: logging.Logger | None = None, prefix: str = "") -> None:
        """Warn with the summary when there were bad files (silent otherwise)."""
        if self.files:
            (log or logger).warning("%s%s", prefix, self.summary())

    def write(self, path: str | os.PathLike) -> None:
        """Write ``path<TAB>reason`` lines (or JSON when the name ends in .json)."""
        p = Path(path)
        if p.suffix == ".json":
            p.write_text(json.dumps({"checked": self.checked, "substitutions": self.substitutions,
                                     "bad_files": self.files}, indent=2) + "\n")
        else:
            p.write_text("".join(f"{k}\t{v}\n" for k, v in sorted(self.files.items())))
