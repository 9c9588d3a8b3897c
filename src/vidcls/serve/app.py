"""The FastAPI application of ``vidcls serve``: the HTTP routes and their errors.

    >>> from vidcls.serve import ServedModel, ServeConfig, create_app
    >>> app = create_app([ServedModel.load("tsm", "runs/demo/tsm")], ServeConfig(max_batch=8))

Routes (the token, when set, guards everything under ``/v1`` and ``/metrics``):

* ``GET /`` -- the page (``static/``: plain HTML + JS, nothing fetched from elsewhere);
* ``GET /healthz`` -> ``{"status": "ok"}``;
* ``GET /v1/models`` -> the loaded models with their classes and input spec;
* ``POST /v1/predict`` (multipart: ``file``, optional ``model``, ``top_k``, ``clips``,
  ``crops``, ``explain``) -> ``{"model", "predictions": [{"label", "index", "score"}],
  "frames", "views", "elapsed_ms"}`` (+ ``"explain"``: the sampled frames and their heat maps
  as PNG data URLs);
* ``WS /v1/stream?model=NAME`` -- see :mod:`vidcls.serve.streaming`;
* ``GET /metrics`` (Prometheus text), ``GET /docs`` (OpenAPI, served offline).

Every error is ``{"error": "one line"}`` with its status. Work never runs on the event loop:
uploads are decoded in the decode pool (``decode_workers`` threads), model calls run in each
model's own thread (:class:`~vidcls.serve.models.ServedModel`), grouped by the
:class:`~vidcls.serve.batching.DynamicBatcher`.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from pathlib import Path

from fastapi import Depends, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.staticfiles import StaticFiles

from vidcls.serve.batching import QueueFull
from vidcls.serve.state import (ServeConfig, ServerState, check_token, explain_images,
                                token_of_header)
from vidcls.serve.streaming import stream_session
from vidcls.serve.uploads import MAX_VIEWS, ApiError, UploadLimit, decode_upload

__all__ = ["create_app", "STATIC_DIR", "PREDICT_FIELDS"]

log = logging.getLogger("vidcls.serve")
STATIC_DIR = Path(__file__).parent / "static"
PREDICT_FIELDS = ("file", "model", "top_k", "clips", "crops", "explain")


# ------------------------------------------------------------------------------ requests
def _int_field(form, name: str, default: int, low: int, high: int) -> int:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise ApiError(422, f"{name} must be an integer, got {str(raw)[:40]!r}") from None
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be in {low}..{high}, got {value}")
    return value


def _bool_field(form, name: str) -> bool:
    raw = str(form.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ApiError(422, f"{name} must be true or false, got {raw[:40]!r}")


async def _read_form(request: Request):
    """The multipart form of a predict request, or the ApiError that says what is wrong."""
    if request.headers.get("content-length") == "0":
        raise ApiError(400, "empty request body: send the video as multipart/form-data field "
                            "'file' (curl -F file=@clip.mp4 URL/v1/predict)")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "send the video as multipart/form-data with a 'file' field "
                            "(curl -F file=@clip.mp4 URL/v1/predict)")
    try:
        return await request.form(max_files=1, max_fields=len(PREDICT_FIELDS))
    except MultiPartException as err:
        raise ApiError(400, f"bad multipart body: {err.message}") from None
    except StarletteHTTPException as err:  # starlette's wrapping of the same, inside an app
        raise ApiError(400, f"bad multipart body: {err.detail}") from None


def _upload_of(form):
    unknown = sorted(set(form.keys()) - set(PREDICT_FIELDS))
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))}; a predict "
                            f"request takes {', '.join(PREDICT_FIELDS)}")
    upload = form.get("file")
    if upload is None:
        raise ApiError(400, "no 'file' field: send the video as multipart/form-data field "
                            "'file' (curl -F file=@clip.mp4 URL/v1/predict)")
    if isinstance(upload, str):
        raise ApiError(400, "field 'file' must be an uploaded file, not text: the server "
                            "never opens a path named in a request (curl -F file=@clip.mp4)")
    if not upload.size:
        raise ApiError(400, "the uploaded file is empty (0 bytes)")
    return upload


# ------------------------------------------------------------------------------ metrics
class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by route and status."""

    def __init__(self, app, *, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            endpoint = _endpoint_label(scope, self.state.route_paths)
            m = self.state.metrics
            m["vidcls_requests_total"].inc(endpoint=endpoint, status=str(status))
            m["vidcls_request_duration_seconds"].observe(time.perf_counter() - start,
                                                         endpoint=endpoint)
            if status >= 400:
                m["vidcls_errors_total"].inc(endpoint=endpoint, status=str(status))


def _endpoint_label(scope, route_paths: set[str]) -> str:
    """The route of a request for metric labels (a fixed set, whatever URLs clients send)."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return route
    path = scope["path"]
    if path in route_paths:  # answered before routing (the upload limit's 413)
        return path
    return "/static" if path.startswith("/static/") else "other"


# ------------------------------------------------------------------------------ the app
def create_app(models: list, config: ServeConfig | None = None):
    """The ASGI application serving ``models`` (:class:`~vidcls.serve.models.ServedModel`
    list; the first is the default). Pools, model threads and the upload directory exist while
    the app runs (its lifespan)."""
    config = config or ServeConfig()
    state = ServerState(models, config)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await state.open()
        try:
            yield
        finally:
            await state.close()

    app = FastAPIOffline(title="vidcls serve", lifespan=lifespan,
                         description="Video classification: upload a clip, or stream a camera "
                                     "through an online TSM (WS /v1/stream).",
                         swagger_ui_parameters={"validatorUrl": None})
    app.state.vidcls = state
    app.add_middleware(UploadLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(RequestMetrics, state=state)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(ApiError)
    async def api_error(request, err: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse({"error": err.message}, err.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, err):
        return JSONResponse({"error": str(err.detail)}, err.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, err):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request, err):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"error": f"internal server error ({type(err).__name__}); "
                                      f"see the server log"}, 500)

    async def require_token(request: Request) -> None:
        check_token(config.token, token_of_header(request.headers.get("authorization")))

    guarded = [Depends(require_token)]

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=guarded)
    async def list_models() -> dict:
        return {"default": state.default,
                "models": [m.spec(stream_max_fps=config.stream_max_fps)
                           for m in state.models.values()]}

    @app.get("/metrics", dependencies=guarded, response_class=PlainTextResponse)
    async def metrics():
        return PlainTextResponse(state.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/v1/predict", dependencies=guarded, openapi_extra=_PREDICT_OPENAPI)
    async def predict(request: Request):
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            form = await _read_form(request)
        except ClientDisconnect:
            log.info("client left during an upload")
            return JSONResponse({"error": "client disconnected during the upload"}, 499)
        try:
            upload = _upload_of(form)
            served = state.model(str(form.get("model") or "") or None)
            top_k = _int_field(form, "top_k", 5, 1, 1000)
            clips = _int_field(form, "clips", 1, 1, MAX_VIEWS)
            crops = _int_field(form, "crops", 1, 1, 10)
            if crops not in (1, 3, 10):
                raise ApiError(422, f"crops must be 1, 3 or 10, got {crops}")
            if clips * crops > MAX_VIEWS:
                raise ApiError(422, f"clips x crops = {clips * crops} views is over the limit "
                                    f"of {MAX_VIEWS}")
            want_explain = _bool_field(form, "explain")
            clip = await loop.run_in_executor(
                state.decode_pool, functools.partial(decode_upload, upload.file,
                                                     served.predictor, state.upload_dir,
                                                     clips=clips, crops=crops))
        finally:
            await form.close()
        try:
            probs = await state.batchers[served.name].submit(clip)  # (K,)
        except QueueFull as err:
            raise ApiError(503, f"server busy: {err}") from None
        k = min(top_k, len(served.classes))
        top_p, top_i = probs.topk(k)
        out = {"model": served.name,
               "predictions": [{"label": served.classes[int(i)], "index": int(i),
                                "score": float(p)} for p, i in zip(top_p, top_i)],
               "frames": int(clip.shape[-4]), "views": int(clip.shape[0]) if clip.dim() == 5
               else 1}
        if served.predictor.multi_label:
            out["multi_label"] = True
        if want_explain:
            out["explain"] = await loop.run_in_executor(
                state.threads[served.name], explain_images, served, clip, int(top_i[0]))
        out["elapsed_ms"] = (time.perf_counter() - start) * 1e3
        return out

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, model: str | None = None):
        await stream_session(websocket, state, model)

    state.route_paths = {route.path for route in app.routes if hasattr(route, "path")}
    return app


_PREDICT_OPENAPI = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "a video file"},
        "model": {"type": "string", "description": "a loaded model (default: the first)"},
        "top_k": {"type": "integer", "default": 5, "minimum": 1},
        "clips": {"type": "integer", "default": 1, "minimum": 1, "maximum": MAX_VIEWS},
        "crops": {"type": "integer", "default": 1, "enum": [1, 3, 10]},
        "explain": {"type": "boolean", "default": False,
                    "description": "add the sampled frames and their heat maps"}}}}}}}
