"""Every zoo entry converts from a locally built file of its exact layout, fetched through the
mirror (or the hub endpoint) from a server on 127.0.0.1; the table itself is consistent."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil

import pytest

from helpers.file_server import FileServer
from helpers.zoo_files import TIMESFORMER_TEST_DEPTH, write_entry_source
from vidcls.convert.formats import FORMAT_NAMES
from vidcls.resources import DATASETS
from vidcls.zoo import ENTRIES, catalog, checkpoint_dir, get_entry, list_entries

DOWNLOADABLE = [e for e in ENTRIES if e.downloadable]


def test_the_table_is_consistent():
    assert len(ENTRIES) >= 15 and len({e.name for e in ENTRIES}) == len(ENTRIES)
    for e in ENTRIES:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]+", e.name), e.name
        assert e.format in FORMAT_NAMES[:6], e.name
        assert e.confirmed and e.page.startswith("https://") and e.license, e.name
        if e.url:
            assert e.url.startswith(("https://", "http://")), e.name
        if not e.classes_in_file:
            assert e.dataset in DATASETS and DATASETS[e.dataset][1] == e.num_classes, e.name
        if e.sha256_prefix:  # mmaction2: the file name ends in the digest's first 8 hex
            assert e.filename.rsplit(".", 1)[0].endswith(e.sha256_prefix), e.name
        assert e.top1 is None or (0 < e.top1 < 100 and e.protocol is not None), e.name


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ValueError, match="did you mean tsm-r50-kinetics400"):
        get_entry("tsm-r50-kinetic400")
    assert {e.dataset for e in list_entries("kinetics400")} == {"kinetics400"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    with FileServer(root / "www", hf_root=root / "hub") as s:
        yield s


@pytest.fixture
def zoo_server(server, tmp_path, monkeypatch):
    """The mirror + fake hub on 127.0.0.1, an empty VIDCLS_HOME, and ``publish(name)``, which
    writes an entry's file there (digests replaced by those of the local file)."""
    monkeypatch.setenv("VIDCLS_MIRROR", server.url + "/")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("VIDCLS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIDCLS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def publish(name):
        entry = get_entry(name)
        path = write_entry_source(entry, server.root, server.hf_root)
        if entry.url and (entry.sha256 or entry.sha256_prefix):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            local = dataclasses.replace(entry, sha256=digest if entry.sha256 else None,
                                        sha256_prefix=digest[:8] if entry.sha256_prefix else None)
            monkeypatch.setitem(catalog._BY_NAME, name, local)
        return path

    server.publish = publish
    server.requests.clear()
    yield server
    shutil.rmtree(server.root, ignore_errors=True)
    shutil.rmtree(server.hf_root, ignore_errors=True)


@pytest.mark.parametrize("name", [e.name for e in DOWNLOADABLE])
def test_every_entry_downloads_and_converts_to_what_it_says(zoo_server, name):
    from vidcls.engine.checkpoint import read_meta

    zoo_server.publish(name)
    entry = get_entry(name)
    ckpt = checkpoint_dir(name, progress=False)
    meta = read_meta(ckpt)
    build = dict(meta["model"])
    assert build.pop("name") == entry.architecture
    assert build.pop("num_classes") == entry.num_classes
    assert build.pop("num_frames") == entry.num_frames
    if entry.architecture.startswith("timesformer"):
        assert build.pop("depth") == TIMESFORMER_TEST_DEPTH  # the test's small stand-in
    for key, value in entry.architecture_options.items():
        assert build.get(key) == value, (key, build)
    assert meta["preprocessing"]["input_size"] == entry.input_size
    assert len(meta["classes"]) == entry.num_classes
    assert meta["source"]["zoo"] == name and meta["source"]["url"] == entry.where
    # a second use makes no request at all
    before = len(zoo_server.requests)
    assert checkpoint_dir(name, progress=False) == ckpt
    assert len(zoo_server.requests) == before


def test_cached_model_offline_and_missing_model_offline(zoo_server, monkeypatch):
    name = "tsm-mobilenetv2-jester-online"
    zoo_server.publish(name)
    monkeypatch.setenv("VIDCLS_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="VIDCLS_OFFLINE"):
        checkpoint_dir(name, progress=False)
    assert zoo_server.requests == []
    monkeypatch.delenv("VIDCLS_OFFLINE")
    ckpt = checkpoint_dir(name, progress=False)
    monkeypatch.setenv("VIDCLS_OFFLINE", "1")
    zoo_server.requests.clear()
    assert checkpoint_dir(name, progress=False) == ckpt and zoo_server.requests == []


def test_hub_entries_offline_use_the_cache_only(zoo_server, monkeypatch):
    hub_entries = [e for e in DOWNLOADABLE if e.hf_repo]
    if not hub_entries:
        pytest.skip("no hub entry")
    name = hub_entries[0].name
    zoo_server.publish(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not in the cache"):
        checkpoint_dir(name, progress=False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    checkpoint_dir(name, progress=False)


def test_a_file_that_is_not_the_published_one_is_never_cached(zoo_server, tmp_path):
    from vidcls.zoo import ChecksumError, vidcls_home

    entry = next(e for e in ENTRIES if e.url and e.sha256_prefix)
    zoo_server.publish(entry.name)
    catalog._BY_NAME[entry.name] = dataclasses.replace(entry, sha256_prefix="0" * 8)
    with pytest.raises(ChecksumError):
        checkpoint_dir(entry.name, progress=False)
    assert not any((vidcls_home() / "downloads").rglob("*.pth"))
    assert not (vidcls_home() / "checkpoints" / entry.name).exists()


def test_unconfirmed_entries_are_listed_and_never_downloaded():
    for entry in (e for e in ENTRIES if not e.downloadable):
        with pytest.raises(ValueError, match="could not be confirmed"):
            checkpoint_dir(entry.name, progress=False)


def test_models_command_table_and_json(capsys):
    from vidcls.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(e.name in out for e in ENTRIES)
    assert main(["models", "--dataset", "kinetics400", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["dataset"] == "kinetics400" for r in rows)
    assert {"name", "url", "format", "dataset", "num_frames", "top1"} <= set(rows[0])
    assert main(["models", "--dataset", "nope"]) == 2
    assert "known:" in capsys.readouterr().err
