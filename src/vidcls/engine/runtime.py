"""Where and how a run executes: device, seeds, determinism, mixed precision, progress, signals.

Training, evaluation and the benchmarks share these so that ``device=auto``,
``train.precision=bf16`` or a Ctrl-C mean the same thing everywhere. Nothing here knows about
models or data.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sys
import threading

import numpy as np
import torch

from vidcls.engine.config import ConfigError
from vidcls.ops.cpu_features import cpu_flags


def resolve_device(spec: str | torch.device, local_rank: int = 0, *,
                   option: str = "device=") -> torch.device:
    """The config's ``device`` (``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps``) as a
    device; one that does not exist here is a ``ConfigError`` naming the fix.

    ``local_rank`` picks this process's GPU under ``torchrun`` for ``auto`` and ``cuda``.
    ``option`` is how the user spelled the setting, for the message (``"--device "`` on the
    command line of ``vidcls predict``).
    """
    spec = str(spec)
    where = "config key device" if option == "device=" else option.strip()
    fix = f"use {option}cpu or {option}auto"
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:[0-9]+)?", spec):
        raise ConfigError(f"{where}: {spec!r} is not a device vidcls runs on; use auto, cpu, "
                          f"cuda, cuda:N or mps")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}: {spec!r} requested but CUDA is not available "
                              f"(this torch is {torch.__version__}); {fix}")
        index = int(spec.partition(":")[2] or local_rank)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{where}: {spec!r} requested but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s); {fix} or cuda:0")
        return torch.device(f"cuda:{index}")
    if spec == "mps" and not (hasattr(torch.backends, "mps") and
                              torch.backends.mps.is_available()):
        raise ConfigError(f"{where}: 'mps' requested but Apple's MPS is not available; {fix}")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch: augmentation and initial weights depend only on ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic() -> None:
    """Ask torch for deterministic kernels (``train.deterministic``), warning where none exist.

    The cuBLAS workspace setting is what CUDA matmuls need to be reproducible; it must be set
    before the first CUDA call, so it is only a default here.
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


#: what ``--precision`` accepts; ``auto`` is resolved by :func:`resolve_precision`
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bf16 in hardware: CUDA with bf16 support, or a CPU with
    ``avx512_bf16`` / ``amx_bf16`` (elsewhere torch emulates bf16, which is slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` where ``device`` computes it natively, else ``fp32``; an explicit
    choice is checked (fp16 needs CUDA). Inference's default, so a user gets the fast path
    without knowing which CPU the job lands on.

    ``VIDCLS_PRECISION`` (``fp32`` / ``bf16`` / ``fp16``) replaces what ``auto`` picks, for
    every command of a job (e.g. the same fp32 numbers on every machine kind: the test suite
    sets ``VIDCLS_PRECISION=fp32``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "auto":
        chosen = os.environ.get("VIDCLS_PRECISION", "").strip()
        if chosen:
            if chosen not in PRECISIONS or chosen == "auto":
                raise ValueError(f"VIDCLS_PRECISION={chosen!r} is not a precision; set it to "
                                 f"fp32, bf16 or fp16, or unset it")
            return resolve_precision(chosen, device)
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device; use bf16 (or auto) on a CPU")
    return precision


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast on CPU/CUDA, fp16 on CUDA only; fp32 = no autocast."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("config key train.precision: fp16 needs a CUDA device; "
                          "use bf16 on CPU (train.precision=bf16)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def progress_bar(*, total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr, or ``None`` when disabled (other ranks, ``--no-progress``)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr,
                mininterval=0.5, unit="step")


class StopFlag:
    """SIGTERM / SIGINT -> remember the signal; a second Ctrl-C interrupts immediately.

    A context manager: the loop polls ``signum`` at step boundaries, so a stop request ends
    the run after a whole optimizer step and a checkpoint instead of in the middle of one.
    Handlers are only installed in the main thread (``signal`` allows nothing else).
    """

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nvidcls: got {signal.Signals(signum).name}; finishing this step and saving a "
              f"checkpoint (Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None


__all__ = ["resolve_device", "seed_everything", "set_deterministic", "autocast_context",
           "progress_bar", "StopFlag", "PRECISIONS", "native_bf16", "resolve_precision"]
