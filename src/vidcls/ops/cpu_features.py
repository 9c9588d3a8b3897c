"""What this CPU computes in hardware, read once from ``/proc/cpuinfo``.

Why: the fastest kernel for one shape depends on the machine kind, not only on torch's
``get_cpu_capability()`` (which says ``AVX512`` for plain AVX-512, AVX-512-BF16 and AMX alike):
bf16 is emulated without ``avx512_bf16`` / ``amx_bf16``, and AMX tiles change which attention
kernel wins (see :func:`vidcls.models.attention.use_matmul_attention`).
"""
from __future__ import annotations

import functools

__all__ = ["cpu_flags", "cpu_kind"]


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_kind() -> str:
    """``AMX`` (bf16 tile units), ``AVX-512-BF16``, ``AVX-512`` or ``AVX2`` (bf16 emulated on
    the last two): the machine kinds benchmark figures are kept per."""
    import torch

    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512-BF16"
    capability = torch.backends.cpu.get_cpu_capability()
    return {"AVX512": "AVX-512"}.get(capability, capability)
