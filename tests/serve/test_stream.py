"""``WS /v1/stream``: each answer equals StreamPredictor on the same frame, state is per
connection, bad frames are answered with an error and the connection stays usable, the frame
rate is capped, and refused connections get an HTTP status with a JSON body."""
from __future__ import annotations

import io
import json
import socket
import time

import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from vidcls.inference.stream import StreamPredictor
from serve.assets import CLASSES, WEBCAM_CLASS, appearance_frames, start_server

pytestmark = pytest.mark.timeout(60)


def _encode(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def _decoded(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def _ask(ws, data) -> dict:
    ws.send(data)
    return json.loads(ws.recv(timeout=20))


def _open(server, model="tsm", **kwargs):
    return connect(f"{server.ws_url}/v1/stream?model={model}", open_timeout=10, **kwargs)


def _connections(server) -> float:
    return server.app.state.vidcls.metrics["vidcls_stream_connections"].value(model="tsm")


def _wait_for_no_connection(server) -> None:
    deadline = time.monotonic() + 10
    while _connections(server) != 0:
        assert time.monotonic() < deadline, "a closed stream was never dropped"
        time.sleep(0.02)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_answers_equal_stream_predictor(server, assets, fmt):
    frames = [_encode(rgb, fmt) for rgb in appearance_frames(WEBCAM_CLASS)]
    reference = StreamPredictor(assets["tsm"], smooth=12, top_k=5)
    with _open(server, subprotocols=["vidcls"]) as ws:
        assert ws.subprotocol == "vidcls"
        for t, data in enumerate(frames):
            got = _ask(ws, data)
            want = reference.step(_decoded(data))  # the frame exactly as the server decodes it
            assert got["frame"] == t and got["label"] == want["label"]
            assert got["score"] == pytest.approx(want["score"], abs=1e-5)
            assert [p["label"] for p in got["top"]] == [p["label"] for p in want["top"]]
            assert got["latency_ms"] > 0 and got["server_ms"] >= got["latency_ms"]
    assert got["label"] == CLASSES[WEBCAM_CLASS]
    _wait_for_no_connection(server)


def test_state_is_per_connection_and_reset_starts_over(server, assets):
    a_frames = [_encode(rgb) for rgb in appearance_frames(0)[:6]]
    b_frames = [_encode(rgb) for rgb in appearance_frames(2)[:6]]
    ref_a = StreamPredictor(assets["tsm"], smooth=12, top_k=5)
    ref_b = StreamPredictor(assets["tsm"], smooth=12, top_k=5)
    with _open(server) as a, _open(server) as b:
        assert _connections(server) == 2
        for fa, fb in zip(a_frames, b_frames):  # interleaved: neither sees the other's frames
            got_a, got_b = _ask(a, fa), _ask(b, fb)
            want_a, want_b = ref_a.step(_decoded(fa)), ref_b.step(_decoded(fb))
            assert got_a["score"] == pytest.approx(want_a["score"], abs=1e-5)
            assert got_b["score"] == pytest.approx(want_b["score"], abs=1e-5)
        assert (got_a["label"], got_b["label"]) == (CLASSES[0], CLASSES[2])
        assert _ask(a, json.dumps({"reset": True})) == {"reset": True}
        ref_a.reset()
        got = _ask(a, b_frames[0])
        assert got["frame"] == 0
        assert got["score"] == pytest.approx(ref_a.step(_decoded(b_frames[0]))["score"], abs=1e-5)
    _wait_for_no_connection(server)
    with _open(server) as again:  # a new connection starts a new stream
        assert _ask(again, a_frames[0])["frame"] == 0


def test_bad_frames_get_an_error_and_the_connection_stays_usable(server):
    good = _encode(appearance_frames(0)[0])
    huge = _encode(np.zeros((3000, 3000, 3), np.uint8))  # small PNG, 9 megapixels
    truncated_png = good[: len(good) // 2]
    bmp = io.BytesIO()
    Image.fromarray(appearance_frames(0)[0]).save(bmp, format="BMP")
    cases = [(b"not an image at all", "is not a JPEG or PNG image"),
             (truncated_png, "damaged PNG frame"),
             (bmp.getvalue(), "frames must be JPEG or PNG, got BMP"),
             (huge, "over the limit of 8294400 pixels"),
             (bytes(300_000), "over the limit of 262144 bytes"),
             ("hello", "text messages are control messages"),
             (json.dumps({"reset": False}), "text messages are control messages")]
    with _open(server) as ws:
        for data, words in cases:
            reply = _ask(ws, data)
            assert set(reply) == {"error"} and words in reply["error"], reply
            ok = _ask(ws, good)  # still usable; the failed frames left no trace
            assert "error" not in ok and ok["frame"] == 0
            assert _ask(ws, json.dumps({"reset": True})) == {"reset": True}
    _wait_for_no_connection(server)


def test_frame_rate_is_capped_per_connection(models):
    good = _encode(appearance_frames(0)[0])
    with start_server(models, stream_max_fps=4) as srv, _open(srv) as ws:
        replies = [_ask(ws, good) for _ in range(10)]  # far faster than 4 per second
        with _open(srv) as other:  # the cap is per connection
            assert "error" not in _ask(other, good)
    answered = [r for r in replies if "error" not in r]
    dropped = [r for r in replies if r.get("dropped")]
    assert len(answered) == 4 and len(dropped) == 6
    assert "over the limit of 4 frames/s per connection" in dropped[0]["error"]
    assert [r["frame"] for r in answered] == [0, 1, 2, 3]


@pytest.mark.parametrize("model, status, words", [
    ("nope", 404, "unknown model 'nope'"),
    ("vit", 422, "cannot stream"),
])
def test_refused_streams_get_a_status_and_json(server, model, status, words):
    with pytest.raises(InvalidStatus) as info:
        _open(server, model=model)
    response = info.value.response
    assert response.status_code == status
    assert words in json.loads(response.body)["error"]


def test_token_for_streams_in_a_header_or_the_subprotocol(models):
    import base64

    frame = _encode(appearance_frames(0)[0])
    encoded = base64.urlsafe_b64encode(b"s3cret").decode().rstrip("=")
    with start_server(models, token="s3cret") as srv:
        for kwargs in ({}, {"additional_headers": {"Authorization": "Bearer nope"}},
                       {"subprotocols": ["vidcls", "vidcls.token.bm9wZQ"]}):
            with pytest.raises(InvalidStatus) as info:
                _open(srv, **kwargs)
            assert info.value.response.status_code == 401
        with _open(srv, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            assert "error" not in _ask(ws, frame)
        with _open(srv, subprotocols=["vidcls", f"vidcls.token.{encoded}"]) as ws:
            assert ws.subprotocol == "vidcls" and "error" not in _ask(ws, frame)


def test_client_gone_mid_stream(server):
    frame = _encode(appearance_frames(0)[0])
    with _open(server) as ws:
        ws.send(frame)  # and leave without reading the answer,
        ws.socket.shutdown(socket.SHUT_RDWR)  # abruptly: no close handshake
        _wait_for_no_connection(server)
    with _open(server) as again:
        assert _ask(again, frame)["frame"] == 0
