"""Uploaded videos: the size limit, the one temporary file per upload, and decoding.

* :class:`UploadLimit` (ASGI middleware) answers 413 before reading a body whose
  ``Content-Length`` is over the limit, and stops reading one without a length (chunked) the
  moment it passes the limit: a client cannot make the server store more than the limit.
* :func:`decode_upload` runs in the decode worker pool: it copies the upload into a fresh
  file of the server's private temporary directory (PyAV and the dataset read paths), decodes
  the clip the model card asks for, and deletes the file whatever happens. The file name is
  made by :func:`tempfile.mkstemp`: nothing a client sends (its file name included) ever
  becomes a path, so a request can neither read nor write a server-side file it names.
* :class:`ApiError` is every expected failure: an HTTP status and a one-line message, answered
  as ``{"error": message}``.

Statuses: 400 malformed request (no ``file`` field, empty upload, a path sent as text),
413 over the size limit, 415 not a video (PyAV cannot open it, or it holds no video stream),
422 a video that cannot be decoded (truncated, damaged) or a bad option value.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO

import torch
from starlette.responses import JSONResponse

from vidcls.data.video import VideoDecodeError, VideoReader
from vidcls.inference.predict import Predictor

__all__ = ["ApiError", "UploadTooLarge", "UploadLimit", "decode_upload", "MAX_VIEWS"]

MAX_VIEWS = 30  # clips x crops of one request: 10 clips x 3 crops, the usual test protocol


class ApiError(Exception):
    """An expected failure of a request: ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class UploadTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"upload over the limit of {limit / 2**20:g} MiB (the server's "
                              f"--max-upload-mb); send a shorter or smaller video")


class UploadLimit:
    """Caps request bodies on ``paths`` at ``max_bytes`` (413 ``{"error": ...}``)."""

    def __init__(self, app, *, max_bytes: int, paths: tuple[str, ...] = ("/v1/predict",)):
        self.app, self.max_bytes, self.paths = app, int(max_bytes), paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            err = UploadTooLarge(self.max_bytes)
            return await JSONResponse({"error": err.message}, err.status)(scope, receive, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge as err:  # raised where no handler caught it
            if started:
                raise
            await JSONResponse({"error": err.message}, err.status)(scope, receive, send)


def _probe(path: str) -> None:
    """415 unless PyAV opens ``path`` as a container with a video stream (a truncated video
    still opens: its decoding fails later, as a 422)."""
    try:
        VideoReader(path, allow_truncated=True).close()
    except VideoDecodeError as err:
        raise ApiError(415, f"the upload is not a video this server can read: {err.reason}") \
            from None


def decode_upload(upload: BinaryIO, predictor: Predictor, upload_dir: str, *, clips: int = 1,
                  crops: int = 1) -> torch.Tensor:
    """The model card's test views of an uploaded video: uint8 ``(T, 3, H, W)`` or
    ``(V, T, 3, H, W)``. Raises :class:`ApiError` 415 / 422; the temporary copy is always
    deleted before returning."""
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=".video", dir=upload_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.seek(0)
            shutil.copyfileobj(upload, out, length=1 << 20)
        _probe(path)
        dataset = predictor.dataset([path], num_clips=clips, num_crops=crops)
        try:
            return dataset[0]["clip"]
        except (VideoDecodeError, RuntimeError) as err:
            reason = getattr(err, "reason", None) or str(err).replace(path, "the upload")
            raise ApiError(422, f"the video could not be decoded: {reason}") from None
    finally:
        os.unlink(path)
