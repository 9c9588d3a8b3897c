"""Suite-wide test settings."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests run tiny models, which gain nothing from intra-op threads; one thread also
    avoids OpenMP oversubscription stalls when the 2-core CI machine runs other processes
    (measured: tiny-model tests ran 3-7x slower with 2 threads on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
