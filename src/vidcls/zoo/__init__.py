"""Published checkpoints by name: ``vidcls predict clip.mp4 --model tsm-r50-kinetics400``.

The zoo is one table of records (:mod:`.catalog`, each a :class:`.ZooEntry`): where the
reference implementations publish their weights (TSM authors, mmaction2, PaddleVideo, the
TimeSformer authors, the Hugging Face hub), which :mod:`vidcls.convert` format reads them, and
the accuracy the source reports with its test protocol. :func:`checkpoint_dir` turns a name into
a vidcls checkpoint directory -- downloaded (:mod:`.downloads`, :mod:`.hub`), verified, converted
and cached under ``VIDCLS_HOME`` (:mod:`.cache`) on first use, read from the cache after.

This package imports no torch until a model is converted, so ``vidcls models`` is instant.
"""
from __future__ import annotations

from vidcls.zoo.cache import cached_checkpoint, checkpoint_dir, fetch_source, vidcls_home
from vidcls.zoo.catalog import ENTRIES, get_entry, is_zoo_name, list_entries
from vidcls.zoo.downloads import (ChecksumError, DownloadError, OfflineError, download,
                                 mirror_url)
from vidcls.zoo.entry import Protocol, ZooEntry

__all__ = ["ENTRIES", "ZooEntry", "Protocol", "list_entries", "get_entry", "is_zoo_name",
           "checkpoint_dir", "cached_checkpoint", "fetch_source", "vidcls_home", "download",
           "mirror_url", "DownloadError", "ChecksumError", "OfflineError", "load_model"]


def load_model(name: str, *, device: str = "cpu", offline: bool | None = None,
               progress: bool = True):
    """The published model ``name`` ready to use: ``(model, meta)`` as
    :func:`vidcls.engine.checkpoint.load_model` returns them (``model.classes``,
    ``model.preprocessing``, ``eval()`` mode)."""
    from vidcls.engine.checkpoint import load_model as load_checkpoint

    return load_checkpoint(checkpoint_dir(name, offline=offline, progress=progress),
                           device=device)
