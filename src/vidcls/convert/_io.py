"""Reading foreign weight files that :mod:`vidcls.models._weights` does not cover.

Torch pickles (``.pth``, ``.pyth``, ``.pth.tar``) are read by
:func:`vidcls.models._weights.load_torch_file` (``weights_only``, then a restricted unpickler
that turns unknown metadata classes into inert placeholders); it is re-exported here so the
converters import their readers from one place. PaddlePaddle's ``.pdparams`` is a pickle of
numpy arrays, read here with an unpickler that reconstructs numpy arrays and nothing else.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from vidcls.models._weights import _NUMPY_GLOBALS, StateDict, load_torch_file

__all__ = ["load_torch_file", "read_paddle_params"]


class _NumpyUnpickler(pickle.Unpickler):
    """For PaddlePaddle ``.pdparams``: numpy arrays and plain containers only; anything else
    is refused (a parameter file has no reason to reference other code)."""

    _EXTRA = {("collections", "OrderedDict"), ("builtins", "tuple"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS or (module, name) in self._EXTRA:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a .pdparams file holds only numpy arrays "
            "(this one references other code; it may be malicious)")


def read_paddle_params(path: str | Path) -> StateDict:
    """PaddlePaddle weights -> ``{name: tensor}``, without running code from the file.

    ``.pdparams`` is what ``paddle.save(layer.state_dict(), path)`` writes: a pickled dict of
    numpy arrays (some Paddle versions store ``(name, array)`` tuples, and a
    ``StructuredToParameterName@@`` name table, which is skipped). It is read with an
    unpickler that only reconstructs numpy arrays. ``.npz`` (``np.savez`` of the same dict) is
    read with ``allow_pickle=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paddle weight file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            obj = {k: archive[k] for k in archive.files}
    else:
        with open(path, "rb") as f:
            try:
                obj = _NumpyUnpickler(f).load()
            except pickle.UnpicklingError as err:
                raise ValueError(f"{path}: {err}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a dict of parameters")
    out = {}
    for key, value in obj.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]
        if isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.array(value, copy=True))
    return out
