"""vidcls.zoo.downloads against a real HTTP server on 127.0.0.1: resume, verification, locks,
offline mode and the mirror."""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os

import pytest

from helpers.file_server import FileServer
from vidcls.zoo.downloads import (ChecksumError, DownloadError, OfflineError, download,
                                 mirror_url)

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)  # a few chunks, not a multiple of the chunk size
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "models").mkdir(parents=True)
    (root / "models" / "weights.pth").write_bytes(PAYLOAD)
    with FileServer(root) as s:
        yield s


def test_download_verifies_and_renames(server, tmp_path):
    dst = tmp_path / "cache" / "weights.pth"
    out = download(f"{server.url}/models/weights.pth", dst, sha256=DIGEST, progress=False)
    assert out == dst and dst.read_bytes() == PAYLOAD
    assert not list(dst.parent.glob("*.part"))


def test_resume_after_the_server_drops_the_connection(server, tmp_path, capsys):
    server.drop["/models/weights.pth"] = [1_000_000, 500_000]  # two drops mid-file
    dst = tmp_path / "weights.pth"
    download(f"{server.url}/models/weights.pth", dst, sha256=DIGEST, progress=False)
    assert dst.read_bytes() == PAYLOAD
    ranges = [r for m, p, r in server.requests if m == "GET"]
    # the second and third connections asked only for the missing bytes
    assert ranges == [None, "bytes=1000000-", "bytes=1500000-"]
    assert "resuming" in capsys.readouterr().err


def test_an_interrupted_part_is_continued_by_the_next_call(server, tmp_path):
    dst = tmp_path / "weights.pth"
    (tmp_path / "weights.pth.part").write_bytes(PAYLOAD[:2_000_000])  # a previous run's bytes
    download(f"{server.url}/models/weights.pth", dst, sha256=DIGEST, progress=False)
    assert dst.read_bytes() == PAYLOAD
    assert [r for m, p, r in server.requests] == ["bytes=2000000-"]


def test_a_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    server.ignore_range.add("/models/weights.pth")
    (tmp_path / "weights.pth.part").write_bytes(b"x" * 1000)
    dst = download(f"{server.url}/models/weights.pth", tmp_path / "weights.pth",
                   sha256=DIGEST, progress=False)
    assert dst.read_bytes() == PAYLOAD


def test_wrong_bytes_are_deleted_and_named(server, tmp_path):
    dst = tmp_path / "weights.pth"
    with pytest.raises(ChecksumError) as err:
        download(f"{server.url}/models/weights.pth", dst, sha256="ab" * 32, progress=False)
    assert DIGEST in str(err.value) and "ab" * 32 in str(err.value)
    assert not dst.exists() and not (tmp_path / "weights.pth.part").exists()


def test_mmaction2_style_digest_prefix(server, tmp_path):
    download(f"{server.url}/models/weights.pth", tmp_path / "a.pth", sha256_prefix=DIGEST[:8],
             progress=False)
    with pytest.raises(ChecksumError, match=r"\.\.\."):
        download(f"{server.url}/models/weights.pth", tmp_path / "b.pth",
                 sha256_prefix="00000000" if not DIGEST.startswith("0") else "ffffffff",
                 progress=False)


def test_http_errors_are_one_line(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/models/missing.pth", tmp_path / "m.pth", progress=False)


def test_no_server_is_a_download_error(tmp_path, monkeypatch):
    monkeypatch.setattr("vidcls.zoo.downloads.time.sleep", lambda s: None)
    with pytest.raises(DownloadError, match="attempts"):
        download("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", progress=False, timeout=2)


def test_offline_with_and_without_the_file(server, tmp_path, monkeypatch):
    dst = tmp_path / "weights.pth"
    monkeypatch.setenv("VIDCLS_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        download(f"{server.url}/models/weights.pth", dst, progress=False)
    assert str(dst) in str(err.value) and "/models/weights.pth" in str(err.value)
    assert server.requests == []
    dst.write_bytes(PAYLOAD)
    assert download(f"{server.url}/models/weights.pth", dst, progress=False) == dst
    assert server.requests == []


def test_mirror_replaces_scheme_and_host_and_keeps_the_path(server, tmp_path, monkeypatch):
    assert mirror_url("https://download.openmmlab.com/a/b.pth?dl=1", "http://m:8/") == \
        "http://m:8/a/b.pth?dl=1"
    assert mirror_url("https://x.org/a/b.pth", "http://m:8/cache/") == "http://m:8/cache/a/b.pth"
    with pytest.raises(ValueError, match="VIDCLS_MIRROR"):
        mirror_url("https://x.org/a", "ftp:/nothing")
    monkeypatch.setenv("VIDCLS_MIRROR", server.url + "/")
    dst = download("https://example.invalid/models/weights.pth", tmp_path / "w.pth",
                   sha256=DIGEST, progress=False)
    assert dst.read_bytes() == PAYLOAD and server.paths() == ["/models/weights.pth"]


def _fetch(url, dst, digest, queue):
    try:
        download(url, dst, sha256=digest, progress=False)
        queue.put("ok")
    except Exception as err:  # noqa: BLE001 - reported to the parent test
        queue.put(repr(err))


def test_two_processes_fetching_at_once_end_with_one_good_file(server, tmp_path):
    dst = tmp_path / "shared" / "weights.pth"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fetch, args=(f"{server.url}/models/weights.pth", dst, DIGEST,
                                              queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(queue.get(timeout=5) for _ in procs) == ["ok", "ok"]
    assert dst.read_bytes() == PAYLOAD
    assert server.paths().count("/models/weights.pth") == 1  # the second found it done
    assert sorted(p.name for p in dst.parent.iterdir()) == ["weights.pth", "weights.pth.lock"]


def test_dropbox_share_links_become_downloads():
    from vidcls.zoo.downloads import direct_url

    assert direct_url("https://www.dropbox.com/s/abc/TimeSformer_divST_8x32_224_K400.pyth?dl=0") \
        == "https://www.dropbox.com/s/abc/TimeSformer_divST_8x32_224_K400.pyth?dl=1"
    assert direct_url("https://example.org/a.pth?dl=0") == "https://example.org/a.pth?dl=0"
