"""Checkpoints that never lose work and never unpickle anything.

A checkpoint is a directory::

    ckpt/
      model.safetensors        the weights (model.state_dict())
      meta.json                how to rebuild and use them: model build config, class names,
                               preprocessing, epoch, metrics, the run's config
      train_state.safetensors  optimizer tensors, RNG states          (training checkpoints only)
      train_state.json         optimizer hyper-parameters, scheduler, grad scaler, progress

Only safetensors and JSON are ever read back, so loading a checkpoint from an untrusted source
cannot execute code. Writing is atomic at two levels: every file goes to a temporary name, is
fsync'ed and renamed, and the whole directory is assembled as ``NAME.tmp`` and swapped in with
renames, so a crash at any instant leaves either the old or the new checkpoint (``NAME.old`` is
picked up if the crash fell between the two renames). An interrupt (a second Ctrl-C) while the
files are written drops the half-written ``NAME.tmp`` and keeps the previous checkpoint; the
two renames themselves run with SIGINT / SIGTERM held back, so they always complete.

A damaged weight file (a copy cut short) is named as such when read: "checkpoint X is damaged
(truncated model.safetensors): ...", not a deserialisation error.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save

from vidcls.models import Preprocessing, create_model
from vidcls.models._registry import get_filter_fn
from vidcls.models._weights import load_filtered

FORMAT = "vidcls-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


# --------------------------------------------------------------------------------------
# Atomic file and directory writes
# --------------------------------------------------------------------------------------

def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file + fsync + rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_json_default).encode("utf-8"))


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint's JSON")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def begin_checkpoint_dir(path: str | Path) -> Path:
    """A fresh ``PATH.tmp`` directory to assemble a checkpoint in (``commit_checkpoint_dir``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT / SIGTERM back (delivered on exit) in the main thread, where Python runs
    signal handlers: a Ctrl-C cannot land between the two renames of a commit."""
    can = hasattr(signal, "pthread_sigmask") and threading.current_thread() is \
        threading.main_thread()
    if not can:
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def commit_checkpoint_dir(tmp: Path, path: str | Path) -> Path:
    """Swap the assembled ``tmp`` in as ``path``: old -> PATH.old, tmp -> PATH, drop old."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    _fsync_dir(tmp)
    if old.exists():
        shutil.rmtree(old)
    with _signals_held():
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old)
    return path


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept a checkpoint dir, its ``model.safetensors``, or a run dir (best, else last)."""
    path = Path(path)
    candidates = []
    if path.is_file() and path.suffix == ".safetensors":
        candidates.append(path.parent)
    candidates += [path, path.with_name(path.name + ".old"),
                   path / "checkpoints" / "best", path / "checkpoints" / "best.old",
                   path / "checkpoints" / "last", path / "checkpoints" / "last.old"]
    for c in candidates:
        if (c / MODEL_FILE).is_file() and (c / META_FILE).is_file():
            return c
    raise FileNotFoundError(
        f"no checkpoint at {str(path)!r}: expected a directory with {MODEL_FILE} and {META_FILE} "
        f"(or a run directory with checkpoints/best or checkpoints/last)")


# --------------------------------------------------------------------------------------
# Model weights + metadata
# --------------------------------------------------------------------------------------

def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    from vidcls.engine.optim import unwrap

    return unwrap(model)


def model_state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the state dict (cloned: safetensors refuses tensors sharing memory)."""
    return {k: v.detach().to("cpu", copy=True).contiguous()
            for k, v in _unwrap(model).state_dict().items()}


def build_meta(model: torch.nn.Module, *, classes: list[str] | None = None,
               preprocessing: Preprocessing | dict | None = None, **extra: Any) -> dict:
    """The metadata record of a model checkpoint.

    ``model.build_config`` (recorded by every registered builder) is how ``load_model`` rebuilds
    the network. ``preprocessing`` (default: the model's own card, ``model.preprocessing``) is
    written as the typed record's dict; a dict given here only changes the fields it names.
    """
    model = _unwrap(model)
    build = dict(getattr(model, "build_config", None) or {})
    if not build:
        raise ValueError("model has no build_config; build it with vidcls.models.create_model "
                         "or a registered builder such as vidcls.models.tsn.tsm_resnet50")
    build.pop("pretrained", None)
    prep = model.preprocessing
    if isinstance(preprocessing, Preprocessing):
        prep = preprocessing
    elif preprocessing:
        prep = Preprocessing.from_dict(preprocessing, base=prep)
    if classes is None:
        classes = [str(i) for i in range(build.get("num_classes", 0))]
    if len(classes) != build.get("num_classes", len(classes)):
        raise ValueError(f"{len(classes)} class names for a model with "
                         f"{build['num_classes']} classes; pass one name per class")
    meta = {"format": FORMAT, "version": VERSION, "model": build, "classes": list(classes),
            "preprocessing": prep.to_dict()}
    meta.update(extra)
    return meta


def save_model_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict | None = None,
                          *, train_state: tuple[dict, dict] | None = None, **meta_kwargs) -> Path:
    """Write a checkpoint directory at ``path`` atomically (public: converters use it too).

    ``meta`` is a dict from ``build_meta`` (built from ``meta_kwargs`` when omitted).
    ``train_state`` = ``(tensors, json_obj)`` from ``pack_train_state`` for resumable checkpoints.
    """
    if meta is None:
        meta = build_meta(model, **meta_kwargs)
    tmp = begin_checkpoint_dir(path)
    try:
        tensors = model_state_for_saving(model)
        atomic_write_bytes(tmp / MODEL_FILE, st_save(tensors, metadata={"format": FORMAT}))
        atomic_write_json(tmp / META_FILE, meta)
        if train_state is not None:
            state_tensors, state_json = train_state
            atomic_write_bytes(tmp / STATE_TENSORS, st_save(state_tensors))
            atomic_write_json(tmp / STATE_JSON, state_json)
    except BaseException:  # an error or a Ctrl-C: the previous checkpoint stays as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return commit_checkpoint_dir(tmp, path)


def _safetensors_damage(file: Path) -> str | None:
    """Why ``file`` cannot be a complete safetensors file, or ``None`` when its size adds up
    (8-byte header length, JSON header, then the tensors' byte ranges)."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"truncated {file.name}: {size} bytes, not even the header length"
        n = int.from_bytes(head, "little")
        if 8 + n > size:
            return f"truncated {file.name}: {size} bytes, the header alone needs {8 + n}"
        try:
            header = json.loads(f.read(n))
            end = max([v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"],
                      default=0)
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"unreadable {file.name} header"
    if 8 + n + end > size:
        return f"truncated {file.name}: {size} of {8 + n + end} bytes"
    return None


def read_safetensors(file: str | Path, *, checkpoint: str | Path | None = None
                     ) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file; a truncated or corrupt file is a ``ValueError``
    naming the checkpoint and the damage."""
    file = Path(file)
    where = checkpoint if checkpoint is not None else file.parent
    fix = "copy or convert it again, or use the run's other checkpoint (checkpoints/last, best)"
    damage = _safetensors_damage(file)
    if damage is None:
        try:
            return st_load_file(str(file))
        except Exception as err:  # safetensors' own error type
            damage = f"unreadable {file.name}: {str(err).splitlines()[0][:120]}"
    kind, _, detail = damage.partition(": ")
    raise ValueError(f"checkpoint {where} is damaged ({kind}): {detail or 'see above'}; {fix}")


def read_meta(path: str | Path) -> dict:
    ckpt = resolve_checkpoint_dir(path)
    with open(ckpt / META_FILE, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{ckpt / META_FILE} is not a vidcls checkpoint (format="
                         f"{meta.get('format')!r}); convert foreign checkpoints first")
    return meta


def read_preprocessing(meta: dict, model: torch.nn.Module | None = None) -> Preprocessing:
    """The checkpoint's model card; fields it lacks come from the model's own card."""
    base = getattr(model, "preprocessing", None) if model is not None else None
    try:
        return Preprocessing.from_dict(meta.get("preprocessing") or {}, base=base)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint meta.json: {err}") from None


def load_model(path: str | Path, *, device: str | torch.device = "cpu",
               strict: bool = True) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights. Returns ``(model, meta)``.

    The model comes back in ``eval()`` mode with ``model.preprocessing`` (a
    :class:`~vidcls.models.Preprocessing`) and ``model.classes`` taken from the checkpoint, so
    predictions use exactly the training-time preprocessing.
    """
    ckpt = resolve_checkpoint_dir(path)
    meta = read_meta(ckpt)
    build = dict(meta["model"])
    build.pop("pretrained", None)
    name = build.pop("name")
    model = create_model(name, **build)
    state = read_safetensors(ckpt / MODEL_FILE, checkpoint=ckpt)
    if strict:
        load_filtered(model, state, source=f"checkpoint {ckpt}")
    else:
        model.load_state_dict(state, strict=False)
    model.to(device)
    model.eval()
    model.preprocessing = read_preprocessing(meta, model)
    model.classes = list(meta.get("classes", []))
    return model, meta


def init_from_checkpoint(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Start training ``model`` from the weights of a vidcls checkpoint (``train --init``).

    The same path as ``pretrained=``: the model family's filter leaves a head of another class
    count at its fresh init (fine-tuning) and resamples TimeSformer embeddings to another frame
    count or size; anything else that does not fit is an error naming the keys. Returns the
    keys that were not taken from the checkpoint.
    """
    ckpt = resolve_checkpoint_dir(path)
    state = read_safetensors(ckpt / MODEL_FILE, checkpoint=ckpt)
    filter_fn = get_filter_fn(model.build_config["name"])
    return load_filtered(model, state, filter_fn, source=f"--init checkpoint {ckpt}")


# --------------------------------------------------------------------------------------
# Training state: optimizer, scheduler, grad scaler, RNG, progress
# --------------------------------------------------------------------------------------

def pack_train_state(*, optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                     scaler=None, progress: dict | None = None,
                     rng: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """Split the training state into (tensors for safetensors, everything else for JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    obj: dict[str, Any] = {"progress": progress or {}}
    if optimizer is not None:
        sd = optimizer.state_dict()
        opt_state = {}
        for pid, entry in sd["state"].items():
            scalars = {}
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    # contiguous: channels_last parameters have channels_last buffers
                    tensors[f"optimizer.{pid}.{key}"] = value.detach().to(
                        "cpu", copy=True).contiguous()
                else:
                    scalars[key] = value
            opt_state[str(pid)] = {"tensors": [k for k, v in entry.items()
                                               if isinstance(v, torch.Tensor)],
                                   "scalars": scalars}
        obj["optimizer"] = {"state": opt_state, "param_groups": sd["param_groups"]}
    if scheduler is not None:
        obj["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        obj["scaler"] = scaler.state_dict()
    if rng:
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        np_state = np.random.get_state()
        tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
        obj["rng"] = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]),
                                float(np_state[4])],
                      "python": _python_rng_to_json(random.getstate())}
    return tensors, obj


def _python_rng_to_json(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def read_train_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = Path(path)
    if not (ckpt / STATE_JSON).is_file():
        ckpt = resolve_checkpoint_dir(path)
    if not (ckpt / STATE_JSON).is_file() or not (ckpt / STATE_TENSORS).is_file():
        raise FileNotFoundError(f"{ckpt} holds weights only, no training state to resume from "
                                f"(resume needs {STATE_JSON} and {STATE_TENSORS})")
    tensors = read_safetensors(ckpt / STATE_TENSORS, checkpoint=ckpt)
    with open(ckpt / STATE_JSON, encoding="utf-8") as f:
        obj = json.load(f)
    return tensors, obj


def restore_train_state(tensors: dict[str, torch.Tensor], obj: dict, *,
                        optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                        scaler=None, rng: bool = True) -> dict:
    """Load what ``pack_train_state`` stored into the live objects; returns the progress dict."""
    if optimizer is not None and "optimizer" in obj:
        state = {}
        for pid, entry in obj["optimizer"]["state"].items():
            values = dict(entry["scalars"])
            for key in entry["tensors"]:
                values[key] = tensors[f"optimizer.{pid}.{key}"]
            state[int(pid)] = values
        groups = obj["optimizer"]["param_groups"]
        if len(groups) != len(optimizer.param_groups):
            raise ValueError(f"checkpoint has {len(groups)} optimizer parameter groups, the "
                             f"current optimizer {len(optimizer.param_groups)}; resume with the "
                             f"config the run was started with")
        for g in groups:  # JSON turns tuples into lists; torch's optimizers expect tuples
            if isinstance(g.get("betas"), list):
                g["betas"] = tuple(g["betas"])
        # load_state_dict moves/casts the state to each parameter's device and dtype.
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and "scheduler" in obj:
        scheduler.load_state_dict(obj["scheduler"])
    if scaler is not None and obj.get("scaler"):
        scaler.load_state_dict(obj["scaler"])
    if rng and "rng" in obj:
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        name, pos, has_gauss, cached = obj["rng"]["numpy"]
        np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos,
                             has_gauss, cached))
        version, internal, gauss = obj["rng"]["python"]
        random.setstate((version, tuple(internal), gauss))
    return obj.get("progress", {})
