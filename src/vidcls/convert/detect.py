"""Which checkpoint format a file is, from the file alone (``vidcls convert --from auto``).

Why a reader of its own: a checkpoint handed to the wrong converter used to fail deep inside it
(``[0, 0, 0, 0] basic blocks``, ``'cls_token' is missing``, a 45-line traceback for a
``.pdparams``); and ``--from auto`` must know the format before it picks a converter. So this
module reads only a file's *layout* -- its container keys and state-dict key names -- and never
its tensors, without torch (``vidcls --help`` and argument errors stay fast) and without running
code from the file:

* torch pickles, zip (``*/data.pkl``) or legacy (magic number, then the object pickle), and
  PaddlePaddle's ``.pdparams`` (a plain pickle of numpy arrays) are read by
  :class:`_LayoutUnpickler`, whose every global is an inert stand-in (tensors, arrays and
  metadata classes alike), so nothing is imported or called;
* ``.npz`` by its member names, ``.safetensors`` by its JSON header, a ``save_pretrained``
  directory by its ``config.json`` and weight file.

:func:`guess_format` names the format the keys show (any of ``formats.FORMAT_NAMES``, the image
formats included), :func:`detect_format` is ``--from auto`` (video formats only: image weights
carry no video settings and stay explicit), and :func:`check_format` refuses a file given to
another format with the format it looks like.
"""
from __future__ import annotations

import io
import json
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Layout", "NotACheckpoint", "read_layout", "guess_format", "detect_format",
           "check_format", "IMAGE_FORMATS"]

#: formats that hold image weights: ambiguous (any ImageNet ResNet / ViT), so never auto-picked
IMAGE_FORMATS = ("torchvision-resnet", "timm-vit")
#: the containers around a state dict, in ``models._weights.CONTAINER_KEYS`` order (that module
#: imports torch; ``tests/convert/test_detect.py`` checks the two tuples agree)
CONTAINER_KEYS = ("state_dict", "model_state", "model", "module")
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy (pre-zip) torch.save
_LEGACY_PICKLES = 3  # after the magic number: protocol version, sys info, then the object


@dataclass(frozen=True)
class Layout:
    """What a checkpoint looks like without its tensors.

    ``kind``: ``torch``, ``pickle`` (a plain pickle: Paddle's ``.pdparams``), ``npz``,
    ``safetensors`` or ``hf-dir``; ``top``: the keys of the saved object; ``container``: which
    of :data:`CONTAINER_KEYS` holds the state dict (None: the object is the state dict);
    ``keys``: the state-dict keys; ``hf_config``: a ``save_pretrained`` directory's config."""

    kind: str
    top: tuple[str, ...] = ()
    container: str | None = None
    keys: tuple[str, ...] = ()
    hf_config: Mapping[str, Any] | None = None


class NotACheckpoint(ValueError):
    """The file is no checkpoint any converter reads (text, random bytes, empty, ...)."""


# ------------------------------------------------------------------ reading the layout
class _Inert:
    """Stand-in for every global a pickle names: records what the pickle hands it and runs
    nothing (a tensor rebuild, a numpy array, an mmengine ``HistoryBuffer`` alike)."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):  # dict subclasses (a yacs CfgNode) are rebuilt this way
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value):  # list subclasses
        pass

    def extend(self, values):
        pass


#: the only real globals a layout pickle may build: plain containers
_SAFE = {("collections", "OrderedDict"): OrderedDict, ("builtins", "set"): set,
         ("builtins", "frozenset"): frozenset, ("__builtin__", "set"): set}


class _LayoutUnpickler(pickle.Unpickler):
    """Unpickles structure only: plain containers are real, every other global is an
    :class:`_Inert` subclass, torch's persistent storages are None."""

    def find_class(self, module: str, name: str):
        safe = _SAFE.get((module, name))
        if safe is not None:
            return safe
        return type(name, (_Inert,), {"_qualname": f"{module}.{name}"})

    def persistent_load(self, pid):
        return None


def _unpickle(f) -> Any:
    return _LayoutUnpickler(f).load()


def _mapping(obj: Any) -> Mapping | None:
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, _Inert):  # an OrderedDict subclass, a CfgNode, ...
        return obj.__dict__.get("items")
    return None


def _layout_of(kind: str, obj: Any, source: Path) -> Layout:
    """The container rule of ``models._weights.unwrap_state_dict``, on the layout."""
    top = _mapping(obj)
    if top is None:
        raise NotACheckpoint(f"{source} is not a checkpoint vidcls can read (it holds a "
                             f"{type(obj).__name__}, not a dict of weights)")
    container = next((k for k in CONTAINER_KEYS if _mapping(top.get(k)) is not None), None)
    state = _mapping(top[container]) if container else top
    keys = tuple(str(k) for k in state)
    return Layout(kind, tuple(str(k) for k in top), container, keys)


def _read_torch_zip(path: Path, archive: zipfile.ZipFile) -> Layout:
    names = archive.namelist()
    pkl = next((n for n in names if n.endswith("data.pkl")), None)
    if pkl is not None:
        return _layout_of("torch", _unpickle(io.BytesIO(archive.read(pkl))), path)
    if names and all(n.endswith(".npy") for n in names):  # np.savez of Paddle parameters
        return Layout("npz", keys=tuple(n[:-len(".npy")] for n in names))
    raise NotACheckpoint(f"{path} is not a checkpoint vidcls can read (a zip archive that is "
                         "neither a torch.save file nor an .npz of arrays)")


def _read_safetensors(path: Path) -> Layout | None:
    """The keys of a ``.safetensors`` file from its header (8-byte length + JSON), else None."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return None
        (size,) = struct.unpack("<Q", head)
        if not 2 <= size <= min(path.stat().st_size - 8, 100 << 20):
            return None
        try:
            header = json.loads(f.read(size))
        except ValueError:
            return None
    if not isinstance(header, dict):
        return None
    return Layout("safetensors", keys=tuple(k for k in header if k != "__metadata__"))


def _what_it_is(path: Path) -> str:
    """A few words on a file no reader understood, for the one-line error."""
    data = path.read_bytes()[:4096]
    if not data:
        return "the file is empty"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not a torch, PaddlePaddle or safetensors weight file"
    kind = _TEXT_KINDS.get(path.suffix.lower(), "")
    return f"a {kind}text file, not weights"


_TEXT_KINDS = {".yaml": "YAML ", ".yml": "YAML ", ".json": "JSON ", ".py": "Python "}


def _read_dir(path: Path) -> Layout:
    if (path / "meta.json").is_file() and (path / "model.safetensors").is_file():
        raise NotACheckpoint(f"{path} is already a vidcls checkpoint; use it as it is "
                             "(predict / eval / stream / train --init read it)")
    config = path / "config.json"
    weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin")
                    if (path / n).is_file()), None)
    if not config.is_file() or weights is None:
        raise NotACheckpoint(f"{path} is a directory but not a checkpoint vidcls can read (a "
                             "timesformer-hf save_pretrained directory holds config.json and "
                             "model.safetensors or pytorch_model.bin)")
    try:
        hf_config = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise NotACheckpoint(f"{config} is not valid JSON") from None
    inner = read_layout(weights)
    return Layout("hf-dir", inner.top, inner.container, inner.keys,
                  hf_config if isinstance(hf_config, dict) else {})


def read_layout(src: str | Path) -> Layout:
    """The :class:`Layout` of a checkpoint file or ``save_pretrained`` directory.

    Raises FileNotFoundError for a missing path and :class:`NotACheckpoint` (a ValueError with
    a one-line message) for anything no converter reads."""
    path = Path(src)
    if path.is_dir():
        return _read_dir(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return _read_torch_zip(path, archive)
        except NotACheckpoint:
            raise
        except Exception:  # a truncated or corrupt archive
            raise NotACheckpoint(f"{path} is not a checkpoint vidcls can read (a damaged zip "
                                 "archive)") from None
    tensors = _read_safetensors(path)
    if tensors is not None:
        return tensors
    with open(path, "rb") as f:
        is_pickle = f.read(1) == b"\x80"  # PROTO: torch and Paddle pickle with protocol >= 2
    if not is_pickle:
        raise NotACheckpoint(f"{path} is not a checkpoint vidcls can read "
                             f"({_what_it_is(path)})")
    try:
        with open(path, "rb") as f:
            obj = _unpickle(f)
            kind = "pickle"
            if obj == _TORCH_MAGIC:  # legacy torch.save: protocol, sys info, then the object
                for _ in range(_LEGACY_PICKLES):
                    obj = _unpickle(f)
                kind = "torch"
    except Exception:  # a damaged pickle, or bytes that only start like one
        raise NotACheckpoint(f"{path} is not a checkpoint vidcls can read (not a torch, "
                             "PaddlePaddle or safetensors weight file)") from None
    return _layout_of(kind, obj, path)


# ------------------------------------------------------------------ naming the format
def _strip(keys, *prefixes: str) -> list[str]:
    out = []
    for key in keys:
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out.append(key)
    return out


def _format_of(layout: Layout) -> str | None:
    """The format a layout's keys show, or None. Each rule is a layout only that format has
    (see each converter's module docstring for its names)."""
    if layout.kind == "hf-dir":
        return "timesformer-hf" if layout.hf_config.get("model_type", "timesformer") == \
            "timesformer" else None
    if any(k.startswith("timesformer.") for k in layout.keys):
        return "timesformer-hf"
    if layout.kind in ("pickle", "npz"):  # Paddle writes these; vidcls reads its ResNetTSM
        return "tsm-paddle"
    keys = _strip(layout.keys, "module.")

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("base_model."):  # ops/models.py's TSN wrapper
        return "tsm-official"
    if has("backbone.transformer_layers.") or has("backbone.patch_embed.projection."):
        return "timesformer-mmaction2"
    if has("backbone.conv._conv.") or any(re.match(r"^backbone\.res\d[a-z]\d*\.", k)
                                          for k in keys):
        return "tsm-paddle"  # a .pdparams renamed to .pth, converted by torch.save
    if has("cls_head.") or has("backbone.conv1.conv."):  # mmcv ConvModule, TSMHead
        return "tsm-mmaction2"
    vit = _strip(keys, "model.")
    if "cls_token" in vit and any(k.startswith("blocks.") for k in vit):
        video = ("time_embed" in vit or any("temporal_" in k for k in vit)
                 or layout.container == "model_state" or has("model."))
        return "timesformer-official" if video else "timm-vit"
    if "classifier.weight" in keys and any(re.match(r"^features\.\d+\.conv\.\d+\.weight$", k)
                                           for k in keys):
        return "tsm-official"  # the online demo's flat MobileNetV2 (torchvision nests conv.0.0)
    if ("conv1.weight" in keys and has("layer1.")) or (has("features.") and has("classifier.")):
        return "torchvision-resnet"
    return None


def guess_format(src: str | Path) -> str | None:
    """The format (one of ``formats.FORMAT_NAMES``) the checkpoint ``src`` looks like; None
    when it is readable but no format's keys match. Unreadable files raise (see
    :func:`read_layout`)."""
    return _format_of(read_layout(src))


def _key_sample(layout: Layout) -> str:
    keys = list(layout.keys[:3])
    return ", ".join(keys) + (", ..." if len(layout.keys) > 3 else "") if keys else "no keys"


def detect_format(src: str | Path) -> str:
    """``--from auto``: the video checkpoint format of ``src`` (``tsm-official``,
    ``tsm-mmaction2``, ``tsm-paddle``, ``timesformer-official``, ``timesformer-hf``,
    ``timesformer-mmaction2``), read from the file and its keys without torch.

    Image weights (``torchvision-resnet``, ``timm-vit``) are ambiguous and carry no video
    settings, so they are an error asking for the explicit format; so is a file no format
    recognises."""
    layout = read_layout(src)
    fmt = _format_of(layout)
    if fmt in IMAGE_FORMATS:
        raise ValueError(f"{src} holds image weights (it looks like a {fmt} checkpoint); they "
                         f"initialise a video model only when asked: use --from {fmt} with "
                         "--num-classes")
    if fmt is None:
        raise ValueError(f"{src} holds weights no vidcls format recognises (keys "
                         f"{_key_sample(layout)}); give the format with --from")
    return fmt


def check_format(src: str | Path, fmt: str) -> None:
    """Refuse ``src`` for the explicit format ``fmt`` when it looks like another one (naming
    that one) or is no checkpoint at all; a readable file whose keys no format claims goes to
    the converter, which reports its keys."""
    seen = guess_format(src)
    if seen is not None and seen != fmt:
        kind = " (image weights)" if seen in IMAGE_FORMATS else ""
        raise ValueError(f"{src} is not a {fmt} checkpoint: it looks like a {seen} "
                         f"checkpoint{kind}; use --from {seen}")
