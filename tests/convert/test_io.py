"""Reading foreign files never runs code from them (``load_torch_file``, the Paddle reader)."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from vidcls.convert import load_torch_file, read_paddle_params


def test_restricted_loader_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": Evil()}, path)
    loaded = load_torch_file(path)
    assert not marker.exists()
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert "opaque" in repr(loaded["meta"])
    evil_paddle = tmp_path / "evil.pdparams"
    evil_paddle.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(ValueError, match="refusing to load"):
        read_paddle_params(evil_paddle)
    assert not marker.exists()
