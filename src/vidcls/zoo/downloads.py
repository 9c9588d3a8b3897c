"""Download one file so that nothing bad is ever left under its name.

``download(url, dst)`` is the only network code of the zoo (Hugging Face entries go through
``huggingface_hub``). Why each part:

* bytes go to ``DST.part`` and are renamed onto ``DST`` only once complete and verified, so a
  crash, a dropped connection or a wrong file never looks like a good download;
* an interrupted ``.part`` is continued with an HTTP ``Range`` request (checkpoints are 100 MB to
  2 GB; starting over on a flaky link may never finish), and the transfer retries with resume
  when the server drops the connection mid-file;
* a file lock (``DST.lock``) makes two processes that fetch the same file at once end with one
  good file: the second waits, then finds it done;
* the sha256 is checked where the source publishes it (all of it, or the first hex digits that
  mmaction2 puts in its file names); a mismatch deletes the bytes and names both digests;
* ``VIDCLS_MIRROR=http://host:port/`` replaces the scheme and host of every URL and keeps the
  path, for firewalled sites (and for the tests, which serve files from 127.0.0.1).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

from filelock import FileLock

__all__ = ["download", "mirror_url", "direct_url", "sha256_of", "DownloadError", "ChecksumError",
           "OfflineError", "is_offline"]

CHUNK = 1 << 20
ATTEMPTS = 5  # connections per download; each one resumes where the last one stopped
_NETWORK_ERRORS = (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError,
                   URLError)


class DownloadError(OSError):
    """A download that could not complete (HTTP error, no connection, too many drops)."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published file (they were deleted)."""


class OfflineError(FileNotFoundError):
    """Offline mode and the file is not in the cache."""


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else the ``VIDCLS_OFFLINE`` environment variable (1/true/yes)."""
    if offline is not None:
        return offline
    return os.environ.get("VIDCLS_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def mirror_url(url: str, mirror: str | None = None) -> str:
    """``url`` with scheme and host replaced by ``mirror`` (default ``$VIDCLS_MIRROR``), path and
    query kept; a path in the mirror is put in front (``http://m/cache/`` + ``/a/b.pth``)."""
    mirror = os.environ.get("VIDCLS_MIRROR", "") if mirror is None else mirror
    if not mirror:
        return url
    m, u = urlsplit(mirror), urlsplit(url)
    if m.scheme not in ("http", "https") or not m.netloc:
        raise ValueError(f"VIDCLS_MIRROR={mirror!r} is not an http(s)://host[:port]/ address")
    path = m.path.rstrip("/") + u.path
    return urlunsplit((m.scheme, m.netloc, path, u.query, ""))


def direct_url(url: str) -> str:
    """The address that returns the file itself. Dropbox share links (``?dl=0``, as the
    TimeSformer authors' README gives them) open a preview page; Dropbox documents ``dl=1`` as
    the switch that forces the download."""
    parts = urlsplit(url)
    if parts.netloc.endswith("dropbox.com") and "dl=0" in parts.query.split("&"):
        query = "&".join("dl=1" if q == "dl=0" else q for q in parts.query.split("&"))
        return urlunsplit(parts._replace(query=query))
    return url


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dst: str | Path, *, sha256: str | None = None,
             sha256_prefix: str | None = None, progress: bool = True, timeout: float = 60.0,
             offline: bool | None = None) -> Path:
    """Fetch ``url`` (through ``$VIDCLS_MIRROR`` when set) into ``dst`` and return ``dst``.

    An existing ``dst`` is returned as is: only verified files are ever renamed onto it.
    Raises :class:`OfflineError` when offline and ``dst`` is missing, :class:`ChecksumError` on
    a digest mismatch, :class:`DownloadError` when the transfer cannot complete."""
    dst = Path(dst)
    if dst.is_file():
        return dst
    if is_offline(offline):
        raise OfflineError(f"{dst.name} is not in the cache and downloads are off "
                           f"(VIDCLS_OFFLINE / --offline): download {url} and put it at {dst}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = mirror_url(direct_url(url))
    with FileLock(str(dst) + ".lock"):
        if dst.is_file():  # another process finished it while this one waited
            return dst
        part = dst.with_name(dst.name + ".part")
        _transfer(source, part, timeout=timeout, progress=progress, label=dst.name)
        _verify(part, source, sha256, sha256_prefix)
        os.replace(part, dst)
    return dst


def _transfer(url: str, part: Path, *, timeout: float, progress: bool, label: str) -> None:
    """Fill ``part`` with the whole body of ``url``, resuming after dropped connections."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if _fetch_rest(url, part, timeout=timeout, progress=progress, label=label):
                return
            problem = "the connection closed before the end of the file"
        except HTTPError as err:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
        except _NETWORK_ERRORS as err:
            problem = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        if attempt < ATTEMPTS:
            print(f"vidcls: {label}: {problem}; resuming ({attempt}/{ATTEMPTS - 1})",
                  file=sys.stderr)
            time.sleep(min(0.5 * attempt, 2.0))
    raise DownloadError(f"{url}: {problem} ({ATTEMPTS} attempts); run the command again to "
                        f"resume from the {part.stat().st_size if part.exists() else 0} bytes "
                        f"kept in {part}")


def _fetch_rest(url: str, part: Path, *, timeout: float, progress: bool, label: str) -> bool:
    """One connection: append the bytes ``part`` lacks. True when the file is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "vidcls", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and offset:  # the kept part is not a prefix of this file: restart
            part.unlink()
            return False
        raise
    with response:
        if offset and response.status != 206:  # the server ignores Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        from tqdm import tqdm

        with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label, disable=not progress, leave=False) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    return total is None or size >= total


def _verify(part: Path, url: str, sha256: str | None, prefix: str | None) -> None:
    if sha256 is None and prefix is None:
        return
    actual = sha256_of(part)
    expected = (sha256 or prefix or "").lower()
    if not actual.startswith(expected):
        part.unlink()
        raise ChecksumError(f"{url}: sha256 {actual} does not match the published "
                            f"{expected}{'' if sha256 else '...'}: the file is damaged or was "
                            f"replaced upstream; it was deleted (nothing was cached)")
