"""Reading weight files and loading them into a model: the one path every initialisation takes.

``create_model(..., pretrained=FILE)``, ``train --init`` and every converter end in
:func:`load_filtered`: a family's ``checkpoint_filter_fn(state_dict, model)`` first takes a
foreign layout to the model's own (timm's pattern: one pure function next to the model), then
one strict check reports every key that does not fit. Files are read by :func:`read_state_dict`
with one container-unwrap rule and without running code from the file (:func:`load_torch_file`).
"""
from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["StateDict", "FilterFn", "read_state_dict", "unwrap_state_dict", "load_torch_file",
           "strip_prefix", "key_report", "classifier_keys", "load_filtered"]

StateDict = dict[str, Tensor]
#: ``(state_dict, model) -> (state_dict in the model's names, keys left at their init)``
FilterFn = Callable[[Mapping[str, Tensor], nn.Module], "tuple[StateDict, list[str]]"]

#: containers around a state dict, checked in this order (mmaction2 / TSM: ``state_dict``;
#: TimeSformer's ``.pyth``: ``model_state``; DeiT / timm / torchvision recipes: ``model``)
CONTAINER_KEYS = ("state_dict", "model_state", "model", "module")


# ------------------------------------------------------------------ reading foreign pickles
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _Opaque:
    """Inert stand-in for a pickled object of a class outside the allowlist (mmengine's
    ``HistoryBuffer`` in a checkpoint's ``meta``, ``argparse.Namespace``, ...). It records what
    the pickle hands it and never runs code: such objects only ever sit in metadata."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __setitem__(self, key, value):  # dict subclasses are rebuilt with SETITEMS
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value):  # list subclasses are rebuilt with APPEND(S)
        self.__dict__.setdefault("list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("list", []).extend(values)

    def __repr__(self) -> str:
        return f"<opaque {self._qualname}>"


def _allowed_globals() -> dict[str, Any]:
    """The globals ``torch.load(weights_only=True)`` accepts (tensor rebuilders, storages,
    dtypes, OrderedDict, ...): known to be safe to call."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        return dict(_get_allowed_globals())
    except Exception:  # private API moved: the few names plain tensors need
        import collections
        return {"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size,
                "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
                "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allowlisted globals (torch's ``weights_only`` set plus numpy array
    reconstruction); any other class becomes an inert ``_Opaque`` subclass, so no other
    callable is ever imported or called."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals().get(f"{module}.{name}")
        if allowed is not None:
            return allowed
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        return type(name, (_Opaque,), {"_qualname": f"{module}.{name}"})


_restricted_pickle = types.ModuleType("vidcls_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.UnpicklingError = pickle.UnpicklingError
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` a foreign checkpoint without executing anything from it.

    ``weights_only=True`` first. Checkpoints whose metadata pickles other classes (mmengine's
    message hub, numpy scalars, config objects) are then read with ``_RestrictedUnpickler``:
    tensors and plain containers come back as usual, unknown objects as inert placeholders.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=_restricted_pickle)


# ------------------------------------------------------------------ state dicts
def unwrap_state_dict(obj: Any, source: Any) -> StateDict:
    """The ``{name: tensor}`` inside a checkpoint: the first of :data:`CONTAINER_KEYS` that
    holds a mapping, else ``obj`` itself. Every entry must be a tensor."""
    if isinstance(obj, Mapping):
        for key in CONTAINER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        kind = type(obj).__name__ if not isinstance(obj, Mapping) else "an empty mapping"
        raise ValueError(f"{source} does not hold a state dict (found {kind})")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{source}: entries {bad[:5]} of the state dict are not tensors")
    return dict(obj)


def read_state_dict(path: str | Path) -> StateDict:
    """A weight file -> state dict, without unpickling arbitrary objects.

    ``.safetensors`` via safetensors (a vidcls checkpoint directory: its ``model.safetensors``);
    anything else via :func:`load_torch_file`, then :func:`unwrap_state_dict`.
    """
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return dict(load_file(str(path)))
    return unwrap_state_dict(load_torch_file(path), path)


def strip_prefix(state_dict: Mapping[str, Tensor], *prefixes: str) -> StateDict:
    """Remove the first matching prefix (e.g. ``module.`` from DDP, ``model.``) from every key."""
    out = {}
    for k, v in state_dict.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


# ------------------------------------------------------------------ loading
def key_report(missing: Iterable[str], unexpected: Iterable[str], limit: int = 8) -> str:
    """``missing keys [...], unexpected keys [...]`` (sorted, at most ``limit`` of each)."""
    def show(keys) -> str:
        keys = sorted(keys)
        more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
        return f"{keys[:limit]}{more}"
    return f"missing keys {show(missing)}, unexpected keys {show(unexpected)}"


def classifier_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the model's classifier (``model.get_classifier()``), wherever it sits."""
    head = model.get_classifier()
    prefix = next(name for name, m in model.named_modules() if m is head)
    return [f"{prefix}.{k}" for k in head.state_dict()]


def _model_name(model: nn.Module) -> str:
    return (getattr(model, "build_config", None) or {}).get("name", type(model).__name__)


def load_filtered(model: nn.Module, state_dict: Mapping[str, Tensor],
                  filter_fn: FilterFn | None = None, *, source: Any = "weights") -> list[str]:
    """Load ``state_dict`` into ``model`` after ``filter_fn`` adapted it; returns the keys left
    at the model's own initialisation (those the filter chose to leave out, e.g. a head with
    another class count).

    Strict otherwise: a key the model lacks, a model key the weights lack or a shape that
    differs is an error naming them (BatchNorm ``num_batches_tracked``, absent from old files,
    is the one exception).
    """
    fresh: list[str] = []
    if filter_fn is not None:
        state_dict, fresh = filter_fn(state_dict, model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and k not in fresh
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{source} does not fit model {_model_name(model)}: "
                         f"{key_report(missing, unexpected)}")
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state_dict.items()
             if v.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"{source} does not fit model {_model_name(model)}: shape mismatch at "
                         f"{', '.join(wrong[:5])} (weights vs model; different architecture?)")
    model.load_state_dict(state_dict, strict=False)
    return list(fresh)
