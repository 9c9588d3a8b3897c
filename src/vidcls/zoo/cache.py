"""Published model by name -> a ready vidcls checkpoint directory, downloaded and converted once.

The cache lives under ``VIDCLS_HOME`` (default ``~/.cache/vidcls``)::

    downloads/NAME/FILE        the source's file, byte for byte (verified where a digest is known)
    hub/                       huggingface_hub's cache for hub entries
    checkpoints/NAME/          the converted vidcls checkpoint (model.safetensors + meta.json)

A second use finds ``checkpoints/NAME`` and downloads and converts nothing (no request at all).
The conversion runs under a lock and writes the checkpoint atomically, so two processes asking
for the same model at once convert it once and neither sees half a checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

from vidcls.zoo.catalog import get_entry
from vidcls.zoo.downloads import download
from vidcls.zoo.entry import ZooEntry
from vidcls.zoo.hub import hub_snapshot

__all__ = ["vidcls_home", "checkpoint_dir", "fetch_source", "cached_checkpoint"]


def vidcls_home() -> Path:
    """``$VIDCLS_HOME``, else ``~/.cache/vidcls`` (read at every call: tests and users may
    change it at run time)."""
    home = os.environ.get("VIDCLS_HOME", "").strip()
    return Path(home).expanduser() if home else Path.home() / ".cache" / "vidcls"


def cached_checkpoint(name: str) -> Path | None:
    """The converted checkpoint of entry ``name`` when it is in the cache, else None."""
    ckpt = vidcls_home() / "checkpoints" / get_entry(name).name
    return ckpt if (ckpt / "meta.json").is_file() and (ckpt / "model.safetensors").is_file() \
        else None


def fetch_source(entry: ZooEntry, *, offline: bool | None = None, progress: bool = True) -> Path:
    """The source's file (or hub snapshot directory) of ``entry``, downloaded when missing."""
    if entry.hf_repo is not None:
        return hub_snapshot(entry.hf_repo, entry.hf_files, vidcls_home() / "hub",
                            offline=offline, progress=progress)
    if entry.url is None:
        raise ValueError(f"{entry.name}: its download address could not be confirmed from "
                         f"{entry.page}; download the checkpoint yourself and run vidcls convert")
    dst = vidcls_home() / "downloads" / entry.name / entry.filename
    return download(entry.url, dst, sha256=entry.sha256, sha256_prefix=entry.sha256_prefix,
                    progress=progress, offline=offline)


def checkpoint_dir(name: str, *, offline: bool | None = None, progress: bool = True) -> Path:
    """The vidcls checkpoint directory of the published model ``name`` (see ``vidcls models``):
    from the cache, else downloaded, verified, converted and cached. ``offline`` (default
    ``$VIDCLS_OFFLINE``) never downloads: a missing file is an :class:`OfflineError` naming
    the file and where to put it."""
    entry = get_entry(name)
    ckpt = vidcls_home() / "checkpoints" / entry.name
    if cached_checkpoint(entry.name) is not None:
        return ckpt
    src = fetch_source(entry, offline=offline, progress=progress)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ckpt) + ".lock"):
        if cached_checkpoint(entry.name) is None:  # not converted by another process meanwhile
            _convert(entry, src, ckpt)
    return ckpt


def _convert(entry: ZooEntry, src: Path, ckpt: Path) -> None:
    from vidcls.convert import convert_checkpoint

    options = dict(entry.options)
    if not entry.classes_in_file:
        options.setdefault("classes", entry.dataset)
    provenance = {"zoo": entry.name, "format": entry.format, "url": entry.where,
                  "sha256": entry.sha256 or entry.sha256_prefix, "page": entry.page,
                  "license": entry.license}
    try:
        convert_checkpoint(src, ckpt, entry.format, provenance=provenance,
                           expect_num_classes=entry.num_classes, **options)
    except ValueError as e:
        raise ValueError(f"{entry.name}: {e}") from None
