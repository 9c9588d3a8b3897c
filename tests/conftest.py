"""Suite-wide test settings."""
import os

import pytest
import torch

# `--precision auto` is bf16 on CPUs with native bf16 and fp32 elsewhere; the suite compares
# paths with fp32 tolerances, so it pins what `auto` means (also for the CLI subprocesses it
# starts) and is the same on every machine kind. tests/engine/test_fast_path.py unsets it to
# test the hardware rule and pins bf16 where it tests bf16.
os.environ["VIDCLS_PRECISION"] = "fp32"


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests run tiny models, which gain nothing from intra-op threads; one thread also
    avoids OpenMP oversubscription stalls when the 2-core CI machine runs other processes
    (measured: tiny-model tests ran 3-7x slower with 2 threads on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
