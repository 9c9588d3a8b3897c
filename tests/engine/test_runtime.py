"""Device resolution, seeding, determinism, autocast and the stop flag."""
import os
import random
import signal

import numpy as np
import pytest
import torch

from vidcls.engine.config import ConfigError
from vidcls.engine.runtime import (StopFlag, autocast_context, progress_bar, resolve_device,
                                   seed_everything, set_deterministic)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    want = torch.device("cuda:1") if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto", local_rank=1) == want
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device=cpu or device=auto"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda:0")


def test_seed_everything_repeats_python_numpy_and_torch():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first


def test_set_deterministic(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    was = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        set_deterministic()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(was[0])
        torch.backends.cudnn.benchmark = was[1]


def test_autocast_context():
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast_context(cpu, "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast_context(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="train.precision=bf16"):
        autocast_context(cpu, "fp16")


def test_progress_bar_disabled_is_none():
    assert progress_bar(total=3, desc="x", enabled=False) is None


def test_stop_flag_remembers_the_signal_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        assert stop.signum is None and stop.name is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and stop.name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
