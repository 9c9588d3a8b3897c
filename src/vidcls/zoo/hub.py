"""Hugging Face hub entries: the files of one repository revision, through ``huggingface_hub``.

The hub has its own protocol (revisions, LFS, xet), mirrors (``HF_ENDPOINT``) and offline mode
(``HF_HUB_OFFLINE``); ``huggingface_hub`` implements them and is what every HF user already has,
so vidcls does not re-implement any of it. Both variables are read at call time (the library
reads them once at import), and the files land in vidcls's own cache directory.
"""
from __future__ import annotations

import os
from pathlib import Path

from vidcls.zoo.downloads import DownloadError, OfflineError, is_offline

__all__ = ["hub_snapshot"]


def _hub_offline(offline: bool | None) -> bool:
    if is_offline(offline):
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_snapshot(repo_id: str, files: tuple[str, ...], cache_dir: Path, *,
                 offline: bool | None = None, progress: bool = True) -> Path:
    """Fetch ``files`` of ``repo_id`` (main revision) into ``cache_dir`` and return the snapshot
    directory that holds them all (what ``save_pretrained`` would have written)."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise DownloadError("hub entries need huggingface_hub: pip install huggingface_hub") \
            from None
    local_only = _hub_offline(offline)
    endpoint = os.environ.get("HF_ENDPOINT") or None
    folder = None
    for filename in files:
        try:
            path = hf_hub_download(repo_id, filename, cache_dir=str(cache_dir),
                                   endpoint=endpoint, local_files_only=local_only)
        except LocalEntryNotFoundError:
            if local_only:
                raise OfflineError(f"{repo_id}/{filename} is not in the cache and downloads are "
                                   f"off (VIDCLS_OFFLINE / HF_HUB_OFFLINE): run once online, or "
                                   f"put the repository's files under {cache_dir}") from None
            raise DownloadError(f"could not reach the hub for {repo_id}/{filename} "
                                f"({endpoint or 'https://huggingface.co'}); set HF_ENDPOINT "
                                f"to a mirror or retry") from None
        except HfHubHTTPError as err:
            raise DownloadError(f"{repo_id}/{filename}: {str(err).splitlines()[0]}") from None
        folder = Path(path).parent
    assert folder is not None, "hub entries list at least one file"
    return folder
