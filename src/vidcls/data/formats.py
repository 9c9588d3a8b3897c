"""Annotation formats -> ``(records, classes)``: the 8 dataset layouts vidcls reads.

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

``load_records(spec, split=...)`` does both steps for a dataset named as on the command line
(``FORMAT:ROOT``, a folder or a list file, :func:`parse_dataset_spec`); ``class_counts`` gives
the samples per class (``vidcls data info``).

Each format is one private parser ``_<format>(root, ann_file, split, options)`` returning
``(records, classes)``; ``FORMATS`` is derived from the table of parsers, so a new format is one
function plus one table entry. ``VideoClipDataset`` (``dataset.py``) turns records into clips.

List lines are read from the right (``split_list_line``): the label columns are the trailing
integers, so a path may contain spaces (``videos/a b.mp4 0``); a line that starts with a quote
is split shell-style (``"videos/a \\"b\\".mp4" 0``).

Long because: the eight parsers are short functions sharing the line, label and class-list
helpers; a module per format would mostly repeat those.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from .video import VIDEO_EXTENSIONS


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


def _is_int(token: str) -> bool:
    return re.fullmatch(r"[-+]?[0-9]+", token) is not None


def split_list_line(line: str, min_numbers: int, *, where: str = "",
                    exists: Callable[[str], bool] | None = None) -> tuple[str, list[str]]:
    """``path n1 n2 ...`` -> ``(path, [n1, n2, ...])``, reading the integer columns from the
    right, so a path may contain spaces (``videos/a b.mp4 0``).

    A line that starts with a quote is split shell-style instead (``"videos/a \\"b\\".mp4" 0``
    or ``'a b.mp4' 0``). Otherwise every trailing integer token is a number column (the path
    keeps at least one token); when that path does not exist (``exists``) but one that also
    takes some of the leading integer tokens does (``clip 2 5`` = the video ``clip 2``, label
    5), the existing one wins, keeping at least ``min_numbers`` columns. The numbers come back
    as text; ``where`` (``file:line``) prefixes errors.
    """
    if line and line[0] in "\"'":
        try:
            tokens = shlex.split(line, comments=False, posix=True)
        except ValueError as err:
            raise ValueError(f"{where}: {err} in {line!r} (close the quote around the path)"
                             ) from None
        return tokens[0], tokens[1:]
    spans = [m.span() for m in re.finditer(r"\S+", line)]
    tokens = [line[a:b] for a, b in spans]
    k = 0  # trailing integer tokens
    while k < len(tokens) - 1 and _is_int(tokens[-1 - k]):
        k += 1

    def path_of(numbers: int) -> str:
        return line[: spans[len(tokens) - numbers - 1][1]]

    if exists is not None and k > min_numbers and not exists(path_of(k)):
        for fewer in range(k - 1, min_numbers - 1, -1):
            if exists(path_of(fewer)):
                k = fewer
                break
    return path_of(k), tokens[len(tokens) - k:]


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


_LIST_SUFFIXES = {"list": (".txt", "list.txt", "_list.txt"),
                  "rawframes": (".txt", "_videofolder.txt", "_list_rawframes.txt")}


def _list_file(fmt: str, root: Path, split: str) -> Path:
    """The default annotation file of a ``list`` / ``rawframes`` split (``root/train.txt``...)."""
    what = f"{split} list file" if fmt == "list" else f"{split} rawframe list"
    return _first_existing([root / f"{n}{suffix}" for n in _split_names(split)
                            for suffix in _LIST_SUFFIXES[fmt]], what, " (pass ann_file=)")


def annotation_file(fmt: str, root: str | os.PathLike, split: str = "train",
                    ann_file: str | os.PathLike | None = None) -> Path | None:
    """The list file a ``list`` / ``rawframes`` split is read from (for messages that name
    it); ``None`` for other formats or when it cannot be found."""
    if ann_file:
        return Path(ann_file)
    if fmt not in _LIST_SUFFIXES:
        return None
    try:
        return _list_file(fmt, Path(root), split)
    except (FileNotFoundError, ValueError):
        return None


def _list(root: Path, ann_file, split: str, options: dict):
    ann = Path(ann_file) if ann_file else _list_file("list", root, split)
    prefix = Path(options.get("data_prefix", root))
    records = []
    for lineno, line in _read_lines(ann):
        path, labels = split_list_line(line, 1, where=f"{ann}:{lineno}",
                                       exists=lambda p: os.path.exists(_resolve(prefix, p)))
        words = line.split()
        if not labels and len(words) > 1 and line[0] not in "\"'":
            labels = words[-1:]  # "v.mp4 walking": a label that is not a number
        records.append(VideoRecord(_resolve(prefix, path), _parse_labels(labels, ann, lineno)))
    return records, _classes_for_list(ann, root, options, _max_label(records))


def _rawframes(root: Path, ann_file, split: str, options: dict):
    ann = Path(ann_file) if ann_file else _list_file("rawframes", root, split)
    prefix = Path(options.get("data_prefix", root))
    records = []
    for lineno, line in _read_lines(ann):
        path, numbers = split_list_line(line, 2, where=f"{ann}:{lineno}",
                                        exists=lambda p: os.path.isdir(_resolve(prefix, p)))
        if len(numbers) < 2 or not _is_int(numbers[0]):
            words = line.split()
            if len(words) < 3:
                raise ValueError(f"{ann}:{lineno}: expected 'frame_dir num_frames label', "
                                 f"got {line!r}")
            bad = numbers[0] if numbers else path.split()[-1]
            raise ValueError(f"{ann}:{lineno}: num_frames must be an integer, got {bad!r}")
        records.append(VideoRecord(_resolve(prefix, path),
                                   _parse_labels(numbers[1:], ann, lineno),
                                   num_frames=int(numbers[0])))
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


def _read_json(path: Path):
    """A JSON annotation file; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column "
                         f"{err.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


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
    labels = _read_json(labels_file)
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_file}: expected an object {{\"template\": \"index\", ...}}, "
                         f"got {type(labels).__name__}")
    try:
        label_map = {str(k): int(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{labels_file}: every class index must be an integer") from None
    classes = [name for name, _ in sorted(label_map.items(), key=lambda kv: kv[1])]
    if options.get("video_dir"):
        video_dir = Path(options["video_dir"])
    else:
        video_dir = next((d for d in (root / "20bn-something-something-v2", root / "videos")
                          if d.is_dir()), root)
    rawframes = bool(options.get("rawframes", False))
    ext = options.get("extension", ".webm")
    items = _read_json(ann)
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        raise ValueError(f"{ann}: expected a list of objects with an \"id\" (and a "
                         f"\"template\" for labelled splits)")
    records = []
    for item in items:
        label = -1
        if "template" in item:
            name = str(item["template"]).replace("[", "").replace("]", "")
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

_PARSERS: dict[str, Callable] = {"folder": _folder, "list": _list, "rawframes": _rawframes,
                                 "kinetics": _kinetics, "sthv2": _sthv2, "ucf101": _ucf101,
                                 "hmdb51": _hmdb51, "jester": _jester}

FORMATS = tuple(_PARSERS)  # the names a config's data.format accepts


def build_records(fmt: str, *, root: str | os.PathLike, ann_file: str | os.PathLike | None = None,
                  split: str = "train", **fmt_options: Any
                  ) -> tuple[list[VideoRecord], list[str]]:
    """Read a dataset's annotations: ``(records, class names)``. See the module docstring."""
    if fmt not in _PARSERS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    records, classes = _PARSERS[fmt](root, ann_file, split, dict(fmt_options))
    if not records:
        raise ValueError(f"{fmt} dataset at {root} (split {split!r}) has no samples")
    return records, classes


def _looks_like_rawframes(line: str, root: Path) -> bool:
    """A list line ``frame_dir num_frames label`` whose first column is a folder."""
    try:
        path, numbers = split_list_line(line, 2, exists=lambda q: (root / q).is_dir())
    except ValueError:
        return False
    return len(numbers) >= 2 and (root / path).is_dir()


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
            if name.endswith("videofolder.txt") or (lines and _looks_like_rawframes(
                    lines[0][1], r)):
                return "rawframes"
            return "list"
    return "folder"


def parse_dataset_spec(spec: str) -> tuple[str, str, str | None]:
    """``"FORMAT:ROOT"``, a dataset folder, or a list file -> ``(format, root, ann_file)``.

    ``"list:data/synth"``, ``"ucf101:/data/UCF101"``, ``"data/synth"`` (format detected) or
    ``"data/synth/val.txt"`` (a list file; root = its folder). A format with an annotation
    *file* (``"list:data/synth/train.txt"``, ``"rawframes:lists/val.txt"``) is that file, its
    root the file's folder.
    """
    fmt, sep, rest = spec.partition(":")
    if sep and fmt in _PARSERS:
        if Path(rest).is_file():
            return fmt, str(Path(rest).parent), rest
        return fmt, rest, None
    p = Path(spec)
    if p.is_file():
        lines = _read_lines(p)
        fmt = "rawframes" if lines and _looks_like_rawframes(lines[0][1], p.parent) else "list"
        return fmt, str(p.parent), str(p)
    return detect_format(p), spec, None


class LoadedDataset(NamedTuple):
    """What :func:`load_records` read: the format it used, the samples and the class names."""

    format: str
    records: list[VideoRecord]
    classes: list[str]


def load_records(spec: str, *, split: str = "train", ann_file: str | os.PathLike | None = None,
                 **fmt_options: Any) -> LoadedDataset:
    """Read the dataset ``spec`` names (``"FORMAT:ROOT"``, a folder or a list file, as
    :func:`parse_dataset_spec` reads it): ``(format, records, classes)``.

    ``ann_file`` overrides the annotation file (a list-file spec gives its own);
    ``fmt_options`` go to the format (``split_id=2``, ``video_dir=...``; see
    :func:`build_records`). A missing root or annotation file raises ``FileNotFoundError``, a
    bad annotation ``ValueError``.
    """
    fmt, root, spec_ann = parse_dataset_spec(spec)
    records, classes = build_records(fmt, root=root, ann_file=ann_file or spec_ann, split=split,
                                     **fmt_options)
    return LoadedDataset(fmt, records, classes)


def class_counts(records: Iterable[VideoRecord], num_classes: int) -> list[int]:
    """Samples per class: ``counts[c]`` = records with label ``c``.

    A multi-label record counts once for each of its labels, so the counts may add up to more
    than the number of records. Labels outside ``0..num_classes-1`` (``-1``: an unlabelled test
    sample) are not counted.
    """
    counts = [0] * num_classes
    for record in records:
        for label in (record.label if isinstance(record.label, list) else [record.label]):
            if 0 <= label < num_classes:
                counts[label] += 1
    return counts
