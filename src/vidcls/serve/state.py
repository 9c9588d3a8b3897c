"""What every route of a server shares: its limits (:class:`ServeConfig`), its models, pools,
batchers, metrics and upload directory (:class:`ServerState`), the model work run in a model's
thread, and the token check.

The token (``--token-file``) is compared in constant time (:func:`hmac.compare_digest`). HTTP
clients send ``Authorization: Bearer TOKEN``; a browser cannot set headers on a WebSocket, so
the page offers the token as the subprotocol ``vidcls.token.<base64url(TOKEN)>`` beside
``vidcls`` (the one the server picks), which keeps it out of URLs and access logs.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hmac
import io
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from vidcls.data.transforms import normalize
from vidcls.inference.explain import explain_clip
from vidcls.serve.batching import DynamicBatcher, predict_views
from vidcls.serve.metrics import Registry, server_metrics
from vidcls.serve.models import ServedModel
from vidcls.serve.uploads import ApiError
from vidcls.viz import overlay_heatmaps, upscale_nearest

__all__ = ["ServeConfig", "ServerState", "check_token", "token_of_header",
           "token_of_subprotocols", "explain_images", "SUBPROTOCOL", "TOKEN_PROTOCOL"]

SUBPROTOCOL = "vidcls"  # the page offers it; "vidcls.token.<base64url>" carries a token
TOKEN_PROTOCOL = "vidcls.token."


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of one server (the ``vidcls serve`` options)."""

    max_upload_mb: float = 200.0
    max_batch: int = 8  # requests per model call; 1 = no batching
    max_wait_ms: float = 10.0  # how long a batch waits to fill up
    max_queue: int = 256  # requests waiting per model before 503
    decode_workers: int = 2
    stream_max_fps: float = 30.0  # frames accepted per second per WebSocket connection
    stream_smooth: int = 12  # frames averaged by the stream's prediction
    max_frame_mb: float = 4.0
    max_frame_pixels: int = 3840 * 2160
    token: str | None = None

    def __post_init__(self):
        for name in ("max_upload_mb", "max_batch", "max_queue", "decode_workers",
                     "stream_max_fps", "stream_smooth", "max_frame_mb", "max_frame_pixels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.token is not None and not self.token:
            raise ValueError("the token is empty; put a secret in the token file")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_frame_bytes(self) -> int:
        return int(self.max_frame_mb * 2**20)


class ServerState:
    """What the routes share: the models, limits, metrics, pools and the upload directory."""

    def __init__(self, models: list[ServedModel], config: ServeConfig):
        if not models:
            raise ValueError("a server needs at least one model")
        names = [m.name for m in models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two models are named {dup[0]!r}; name them with "
                             f"--checkpoint NAME=DIR")
        self.models = {m.name: m for m in models}
        self.default = models[0].name
        self.config = config
        self.metrics: Registry = server_metrics()
        self.decode_pool: ThreadPoolExecutor | None = None
        self.threads: dict[str, ThreadPoolExecutor] = {}  # model name -> its inference thread
        self.batchers: dict[str, DynamicBatcher] = {}
        self.upload_dir: str | None = None
        self.route_paths: set[str] = set()  # the app's routes (metric labels)

    def model(self, name: str | None) -> ServedModel:
        name = name or self.default
        if name not in self.models:
            raise ApiError(404, f"unknown model {name!r}; this server has "
                                f"{', '.join(self.models)} (GET /v1/models)")
        return self.models[name]

    async def open(self) -> None:
        self.upload_dir = tempfile.mkdtemp(prefix="vidcls-serve-")
        self.decode_pool = ThreadPoolExecutor(self.config.decode_workers,
                                              thread_name_prefix="vidcls-decode")
        for name, served in self.models.items():
            self.threads[name] = ThreadPoolExecutor(1, thread_name_prefix=f"vidcls-infer-{name}")
            batcher = DynamicBatcher(
                functools.partial(_run_batch, served), self.threads[name],
                max_batch=self.config.max_batch, max_wait_ms=self.config.max_wait_ms,
                max_queue=self.config.max_queue,
                on_batch=functools.partial(self._batch_size, served.name),
                on_queue=functools.partial(self._queue_depth, served.name))
            batcher.start()
            self.batchers[served.name] = batcher

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        self.batchers.clear()
        for thread in self.threads.values():
            thread.shutdown(wait=True, cancel_futures=True)
        self.threads.clear()
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=True, cancel_futures=True)
            self.decode_pool = None
        if self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)
            self.upload_dir = None

    def _batch_size(self, model: str, size: int) -> None:
        self.metrics["vidcls_batch_size"].observe(size, model=model)

    def _queue_depth(self, model: str, depth: int) -> None:
        self.metrics["vidcls_queue_depth"].set(depth, model=model)


# ------------------------------------------------------------------------------ model work
def _run_batch(served: ServedModel, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    """One model call for a batch of decoded clips (in the model's thread)."""
    p = served.predictor
    return predict_views(p.model, clips, mean=p.mean, std=p.std, device=p.device,
                         precision=served.precision, multi_label=p.multi_label)


def _png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def explain_images(served: ServedModel, clip: torch.Tensor, target: int,
                   min_size: int = 96) -> dict:
    """The first view's sampled frames and their heat maps (``explain``'s method), as PNG
    data URLs upscaled to at least ``min_size`` pixels (in the model's thread)."""
    p = served.predictor
    view = clip if clip.dim() == 4 else clip[0]  # (T, 3, H, W) uint8
    ex = explain_clip(p.model, normalize(view.to(p.device), p.mean, p.std), target=target)
    frames = view.permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
    overlays = overlay_heatmaps(frames, ex.heat.cpu())
    factor = max(1, -(-min_size // min(frames.shape[1:3])))
    return {"method": ex.method, "layer": ex.layer, "class": p.classes[ex.target],
            "frames": [_png_data_url(f) for f in upscale_nearest(frames, factor)],
            "heatmaps": [_png_data_url(f) for f in upscale_nearest(overlays, factor)]}


# ------------------------------------------------------------------------------ token
def token_of_header(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (None: no header; "": another
    scheme, which never matches)."""
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def token_of_subprotocols(offered: list[str]) -> str | None:
    """The token in the WebSocket subprotocol ``vidcls.token.<base64url>`` (None: not offered)."""
    for protocol in offered:
        if protocol.startswith(TOKEN_PROTOCOL):
            encoded = protocol[len(TOKEN_PROTOCOL):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return ""
    return None


def check_token(expected: str | None, given: str | None) -> None:
    """401 unless ``given`` is the server's token (no token configured: everyone may)."""
    if expected is None:
        return
    if given is None:
        raise ApiError(401, "missing token: send 'Authorization: Bearer TOKEN' (the server "
                            "was started with --token-file)")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "wrong token")
