"""Fixtures of the server tests (built by :mod:`serve.assets`)."""
from __future__ import annotations

import pytest

from serve.assets import make_assets, served_models, start_server


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("serve-assets"))


@pytest.fixture(scope="session")
def models(assets):
    return served_models(assets)


@pytest.fixture(scope="module")
def server(models):
    """One shared server: a 1 MiB upload limit, 0.25 MiB frames, no token."""
    srv = start_server(models, max_upload_mb=1.0, max_frame_mb=0.25, stream_max_fps=1000)
    yield srv
    srv.stop()
