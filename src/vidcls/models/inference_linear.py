"""A linear layer that keeps its autocast-dtype weights between inference calls.

Why: autocast casts every float32 weight to bf16 (or fp16) again on every forward pass; its
own cast cache lives for one ``torch.autocast`` region, i.e. one call. For TimeSformer-B that
is 86 M parameters read (344 MB) and written (172 MB) per clip, pure memory traffic around
GEMMs that a bf16 CPU (AVX-512-BF16, AMX) finishes quickly: measured ~5 % of the whole bf16
forward pass on AVX-512-BF16 and 6-7 % together with the MLP's scratch buffer on AMX
(``benchmarks/bench_timesformer.py``, docs/benchmarks.md). Casting once and keeping the
copy gives bit-identical results (the same round-to-nearest-even cast) for half the weights'
memory again, only while autocast inference runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidcls.ops.temporal_shift import in_eager_inference

__all__ = ["InferenceLinear", "autocast_dtype"]


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast computes linear layers in on ``device_type`` now, or None (off)."""
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


class InferenceLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) that, at eager inference under autocast,
    computes with a cached cast of its weight and bias (see the module docstring).

    The copy is keyed on the parameters' storage, version counter and the autocast dtype, so
    an optimiser step, ``load_state_dict`` or ``.to()`` forms it anew; training, autograd,
    tracing and compiling take the plain ``nn.Linear`` path (exporters see the fp32 weights).
    ``train()`` drops the copy, so a model going back to training holds no extra memory.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cast: tuple | None = None  # (key, (weight, bias)) in the autocast dtype

    def compute_weights(self, device_type: str | None = None) -> tuple[Tensor, Tensor | None]:
        """``(weight, bias)`` in the dtype this layer computes in now: the cached autocast
        copy at eager inference under autocast, else the parameters themselves."""
        weight, bias = self.weight, self.bias
        dtype = autocast_dtype(device_type or weight.device.type)
        if (dtype is None or dtype == weight.dtype or not weight.is_floating_point()
                or self.training or not in_eager_inference()):
            return weight, bias
        key = (dtype, *((t.data_ptr(), t._version) for t in (weight, bias) if t is not None))
        if self._cast is None or self._cast[0] != key:
            self._cast = None  # free the stale copy before forming the new one
            self._cast = (key, (weight.to(dtype), None if bias is None else bias.to(dtype)))
        return self._cast[1]

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, *self.compute_weights(x.device.type))

    def train(self, mode: bool = True):
        if mode:
            self._cast = None
        return super().train(mode)

    def __getstate__(self):
        # Pickling or deep-copying a model never carries (or duplicates) the cached copy.
        state = super().__getstate__()
        return {**state, "_cast": None}
