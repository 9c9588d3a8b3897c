"""``WS /v1/stream``: live frames through an online TSM, one connection = one stream.

The client sends frames as binary messages (a JPEG or PNG image each); the server answers each
with one JSON message: the top-k of the smoothed prediction (the mean of the last ``smooth``
frames' logits, as ``vidcls stream`` does), the model's per-frame latency and the server's
(decode + wait + model). A text message ``{"reset": true}`` starts a new stream on the same
connection. A frame that cannot be used -- not an image, too many bytes or pixels, over the
frame rate cap -- is answered with ``{"error": ...}`` and the connection stays usable; the
state (a :class:`vidcls.inference.stream.StreamPredictor`: the shift caches and the smoothing
window) belongs to the connection and is dropped when it closes.

The per-connection cap (``max_fps`` frames accepted in any one-second window) keeps one
client from taking all of a model's thread; frames over it cost only a size check.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import io
import json
import logging
import time

import numpy as np
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from vidcls.serve.state import (SUBPROTOCOL, ServerState, check_token, token_of_header,
                                token_of_subprotocols)
from vidcls.serve.uploads import ApiError

__all__ = ["FrameError", "decode_frame", "RateCap", "stream_reply", "stream_session"]

log = logging.getLogger("vidcls.serve")

IMAGE_FORMATS = ("JPEG", "PNG")


class FrameError(ValueError):
    """A frame the server cannot use; answered as ``{"error": message}``."""


def decode_frame(data: bytes, *, max_pixels: int) -> np.ndarray:
    """A JPEG or PNG image -> RGB ``uint8 (H, W, 3)``.

    The pixel count is checked from the header before any pixel is decoded, so a small file
    claiming a huge image (a decompression bomb) costs nothing."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise FrameError(f"frame of {len(data)} bytes is not a JPEG or PNG image") from None
    with image:
        if image.format not in IMAGE_FORMATS:
            raise FrameError(f"frames must be JPEG or PNG, got {image.format}")
        width, height = image.size
        if width * height > max_pixels:
            raise FrameError(f"frame of {width}x{height} pixels is over the limit of "
                             f"{max_pixels} pixels; send smaller frames")
        try:
            rgb = np.array(image.convert("RGB"))  # a writable copy: torch warns on read-only
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise FrameError(f"damaged {image.format} frame ({err})") from None
    return rgb  # (H, W, 3) uint8


class RateCap:
    """At most ``max_fps`` accepted frames in any window of one second."""

    def __init__(self, max_fps: float, clock=time.monotonic):
        self.max_fps, self.clock = float(max_fps), clock
        self._accepted: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        now = self.clock()
        while self._accepted and now - self._accepted[0] >= 1.0:
            self._accepted.popleft()
        if len(self._accepted) >= self.max_fps:
            return False
        self._accepted.append(now)
        return True


def stream_reply(record: dict, *, server_ms: float) -> dict:
    """The JSON answer to one frame, from a :class:`StreamPredictor` record."""
    return {"frame": record["frame"], "label": record["label"], "index": record["index"],
            "score": record["score"], "top": record["top"],
            "latency_ms": record["latency_ms"], "server_ms": server_ms}


async def _deny(websocket: WebSocket, err: ApiError) -> None:
    """Refuse a WebSocket before it opens: an HTTP error response with the JSON body where
    the server supports it, else an error message and close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"error": err.message}, err.status))
        return
    await websocket.accept()
    await websocket.send_json({"error": err.message, "status": err.status})
    await websocket.close(code=1008)


async def stream_session(websocket: WebSocket, state: ServerState, name: str | None) -> None:
    """One ``WS /v1/stream`` connection, from the token check to the close."""
    config, metrics = state.config, state.metrics
    offered = list(websocket.scope.get("subprotocols") or [])
    try:
        given = token_of_header(websocket.headers.get("authorization"))
        check_token(config.token, given if given is not None else
                     token_of_subprotocols(offered))
        served = state.model(name)
        if not served.streamable:
            raise ApiError(422, f"model {served.name!r} cannot stream: {served.stream_error}")
    except ApiError as err:
        metrics["vidcls_errors_total"].inc(endpoint="/v1/stream", status=str(err.status))
        await _deny(websocket, err)
        return
    loop = asyncio.get_running_loop()
    predictor = await loop.run_in_executor(
        state.threads[served.name], functools.partial(served.stream_predictor,
                                           smooth=config.stream_smooth, top_k=5))
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    cap = RateCap(config.stream_max_fps)
    frames, connections = metrics["vidcls_stream_frames_total"], metrics["vidcls_stream_connections"]
    connections.inc(model=served.name)

    async def answer_frame(data: bytes) -> dict:
        start = time.perf_counter()
        if len(data) > config.max_frame_bytes:
            raise FrameError(f"frame of {len(data)} bytes is over the limit of "
                             f"{config.max_frame_bytes} bytes; send smaller JPEG frames")
        if not cap.allow():
            frames.inc(model=served.name, outcome="dropped")
            return {"error": f"over the limit of {config.stream_max_fps:g} frames/s per "
                             f"connection; frame dropped", "dropped": True}
        rgb = await loop.run_in_executor(state.decode_pool, functools.partial(
            decode_frame, data, max_pixels=config.max_frame_pixels))
        record = await loop.run_in_executor(state.threads[served.name], predictor.step, rgb)
        seconds = time.perf_counter() - start
        frames.inc(model=served.name, outcome="ok")
        metrics["vidcls_stream_frame_seconds"].observe(seconds, model=served.name)
        return stream_reply(record, server_ms=seconds * 1e3)

    async def answer_text(text: str) -> dict:
        try:
            control = json.loads(text)
        except ValueError:
            control = None
        if not (isinstance(control, dict) and control.get("reset") is True):
            raise FrameError('text messages are control messages ({"reset": true}); send '
                             'frames as binary JPEG or PNG messages')
        await loop.run_in_executor(state.threads[served.name], predictor.reset)
        return {"reset": True}

    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                if message.get("bytes") is not None:
                    reply = await answer_frame(message["bytes"])
                else:
                    reply = await answer_text(message.get("text") or "")
            except FrameError as err:
                frames.inc(model=served.name, outcome="error")
                metrics["vidcls_errors_total"].inc(endpoint="/v1/stream", status="frame")
                reply = {"error": str(err)}
            await websocket.send_json(reply)
    except (WebSocketDisconnect, OSError):
        pass  # the client left mid-stream: nothing to answer
    finally:
        connections.dec(model=served.name)
        log.debug("stream on %s closed", served.name)
