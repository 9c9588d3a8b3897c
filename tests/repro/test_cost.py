"""run_cost's settings are checked before the benchmark spends minutes on them."""
from __future__ import annotations

import pytest

from vidcls.repro.cost import run_cost


@pytest.mark.parametrize("dtypes, message", [
    (("fp32", "fp8", "int4"), r"unknown dtype\(s\) fp8, int4; use fp32, bf16"),
    (("bf16", "fp16"), r"unknown dtype\(s\) fp16; use fp32, bf16"),
])
def test_run_cost_refuses_unknown_dtypes(tmp_path, dtypes, message):
    with pytest.raises(ValueError, match=message):
        run_cost(tmp_path / "out", dtypes=dtypes, verbose=False)
    assert not (tmp_path / "out").exists()  # refused before anything ran or was written


@pytest.mark.parametrize("max_seconds", [0.0, -1.5])
def test_run_cost_refuses_a_budget_that_is_not_positive(tmp_path, max_seconds):
    with pytest.raises(ValueError, match=f"--max-seconds must be > 0, got {max_seconds}"):
        run_cost(tmp_path / "out", max_seconds=max_seconds, dtypes=("fp32",), verbose=False)
    assert not (tmp_path / "out").exists()
