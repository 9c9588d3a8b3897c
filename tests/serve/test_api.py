"""The HTTP API of ``vidcls serve`` against a real server on 127.0.0.1: predictions equal
Predictor's, dynamic batching changes none of them, every bad request gets its status and a
JSON ``{"error": ...}``, and the server stays up with no temporary file or thread left."""
from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from vidcls.inference.predict import Predictor
from serve.assets import CLASSES, served_models, start_server
from helpers.videos import encode, moving_frames

pytestmark = pytest.mark.timeout(120)


def _post(client, video, **fields):
    with open(video, "rb") as f:
        return client.post("/v1/predict", files={"file": (video.name, f, "video/mp4")},
                           data={k: str(v) for k, v in fields.items()})


def _vidcls_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("vidcls-")}


def _assert_clean(server) -> None:
    """Up, and no upload left in its temporary directory."""
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
    upload_dir = server.app.state.vidcls.upload_dir
    assert upload_dir is not None and os.listdir(upload_dir) == []


def test_health_and_models(server):
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        body = client.get("/v1/models").json()
    assert body["default"] == "tsm"
    tsm, vit = body["models"]
    assert tsm["name"] == "tsm" and tsm["arch"] == "tsm_resnet18" and tsm["classes"] == CLASSES
    assert tsm["input"] == {"num_frames": 8, "sampling": "segment", "resize": 36,
                            "crop": [32, 32], "mean": pytest.approx([0.485, 0.456, 0.406]),
                            "std": pytest.approx([0.229, 0.224, 0.225])}
    assert tsm["stream"] == {"supported": True, "max_fps": 1000}
    assert vit["stream"]["supported"] is False and "cannot stream" in vit["stream"]["reason"]


@pytest.mark.parametrize("label", [0, 1, 2])
def test_predict_equals_predictor(server, assets, label):
    video = assets["videos"][label]
    expected = Predictor(assets["tsm"])([video], top_k=2, num_clips=2, num_crops=3)[0]
    with httpx.Client(base_url=server.url) as client:
        r = _post(client, video, top_k=2, clips=2, crops=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tsm" and body["frames"] == 8 and body["views"] == 6
    assert [p["label"] for p in body["predictions"]] == \
        [p["label"] for p in expected["predictions"]]
    assert [p["score"] for p in body["predictions"]] == pytest.approx(
        [p["probability"] for p in expected["predictions"]], abs=1e-5)
    assert body["predictions"][0]["label"] == CLASSES[label] and body["elapsed_ms"] > 0


def test_predict_other_model_and_explain(server, assets):
    video = assets["videos"][0]
    expected = Predictor(assets["vit"])([video], top_k=3)[0]["predictions"]
    with httpx.Client(base_url=server.url) as client:
        vit = _post(client, video, model="vit", top_k=10).json()
        explained = _post(client, video, explain="true").json()
    assert vit["model"] == "vit" and vit["frames"] == 4
    assert [p["label"] for p in vit["predictions"]] == [p["label"] for p in expected]  # top_k capped
    ex = explained["explain"]
    assert ex["method"] == "gradcam" and ex["class"] == explained["predictions"][0]["label"]
    assert len(ex["frames"]) == len(ex["heatmaps"]) == 8
    assert all(u.startswith("data:image/png;base64,") for u in ex["frames"] + ex["heatmaps"])


def test_batching_on_and_off_give_identical_predictions(assets):
    jobs = [(assets["videos"][i % 3], {"clips": 1 + i % 2, "top_k": 3}) for i in range(12)]
    results, batch_sizes = {}, {}
    for name, config in (("off", dict(max_batch=1)), ("on", dict(max_batch=8, max_wait_ms=100))):
        with start_server(served_models(assets), **config) as srv:
            with httpx.Client(base_url=srv.url, timeout=60) as client, \
                    ThreadPoolExecutor(len(jobs)) as pool:
                responses = list(pool.map(lambda job: _post(client, job[0], **job[1]), jobs))
            assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
            results[name] = [r.json()["predictions"] for r in responses]
            hist = srv.app.state.vidcls.metrics["vidcls_batch_size"]
            batch_sizes[name] = (hist.count(model="tsm"), hist.bucket_counts(model="tsm"))
    for off, on in zip(results["off"], results["on"]):
        assert [p["label"] for p in off] == [p["label"] for p in on]
        assert [p["score"] for p in off] == pytest.approx([p["score"] for p in on], abs=1e-5)
    calls_off, buckets_off = batch_sizes["off"]
    calls_on, buckets_on = batch_sizes["on"]
    assert calls_off == 12 and buckets_off[0] == 12  # every call had one request
    assert calls_on < 12 and buckets_on[0] < calls_on  # some calls grouped several


def _raw_post(server, headers: dict, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=server.url) as client:
        return client.post("/v1/predict", headers=headers, content=body)


def _multipart(fields: dict, boundary: str = "vidclsboundary") -> tuple[dict, bytes]:
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):  # (filename, bytes)
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n").encode()
            parts.append(b"--" + boundary.encode() + b"\r\n" + head + value[1] + b"\r\n")
        else:
            head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            parts.append(b"--" + boundary.encode() + b"\r\n" + head + value.encode() + b"\r\n")
    body = b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, assets):
    d = tmp_path_factory.mktemp("bad-uploads")
    faststart = encode(d / "faststart.mp4", moving_frames(48, 48, 64),
                       container_options={"movflags": "faststart"})
    plain = encode(d / "plain.mp4", moving_frames(48, 48, 64))
    return {"truncated": faststart.read_bytes()[: faststart.stat().st_size * 6 // 10],
            "cut_before_index": plain.read_bytes()[: plain.stat().st_size * 6 // 10],
            "not_video": assets["not_video"].read_bytes(),
            "good": assets["videos"][0].read_bytes()}


@pytest.mark.parametrize("case, status, words", [
    ("not_video", 415, "not a video this server can read"),
    ("cut_before_index", 415, "not a readable video"),
    ("truncated", 422, "could not be decoded: truncated"),
    ("empty_file", 400, "empty (0 bytes)"),
    ("no_file_field", 400, "no 'file' field"),
    ("path_as_text", 400, "never opens a path"),
    ("unknown_field", 400, "unknown field(s) 'path'"),
    ("two_files", 400, "bad multipart body: Too many files"),
    ("no_boundary", 400, "bad multipart body"),
    ("empty_body", 400, "empty request body"),
    ("json_body", 415, "multipart/form-data"),
    ("unknown_model", 404, "unknown model 'nope'"),
    ("bad_top_k", 422, "top_k must be an integer"),
    ("bad_crops", 422, "crops must be 1, 3 or 10"),
    ("too_many_views", 422, "over the limit of 30"),
    ("bad_explain", 422, "explain must be true or false"),
    ("over_limit", 413, "over the limit of 1 MiB"),
    ("over_limit_chunked", 413, "over the limit of 1 MiB"),
])
def test_bad_requests_get_their_status_and_the_server_stays_clean(server, bad_files, case,
                                                                  status, words):
    good = ("clip.mp4", bad_files["good"])
    requests = {
        "not_video": {"file": ("notes.mp4", bad_files["not_video"])},
        "cut_before_index": {"file": ("cut.mp4", bad_files["cut_before_index"])},
        "truncated": {"file": ("cut.mp4", bad_files["truncated"])},
        "empty_file": {"file": ("clip.mp4", b"")},
        "no_file_field": {"model": "tsm"},
        "path_as_text": {"file": "/etc/passwd"},
        "unknown_field": {"file": good, "path": "/etc/passwd"},
        "two_files": {"file": good, "model": ("b.mp4", bad_files["good"])},
        "unknown_model": {"file": good, "model": "nope"},
        "bad_top_k": {"file": good, "top_k": "many"},
        "bad_crops": {"file": good, "crops": "2"},
        "too_many_views": {"file": good, "clips": "11", "crops": "3"},
        "bad_explain": {"file": good, "explain": "perhaps"},
        "over_limit": {"file": ("big.mp4", bytes(1_200_000))},
    }
    if case in requests:
        headers, body = _multipart(requests[case])
        r = _raw_post(server, headers, body)
    elif case == "no_boundary":
        r = _raw_post(server, {"content-type": "multipart/form-data"}, b"x" * 100)
    elif case == "empty_body":
        r = _raw_post(server, {"content-type": "multipart/form-data; boundary=b"}, b"")
    elif case == "json_body":
        r = _raw_post(server, {"content-type": "application/json"}, b'{"file": "/etc/passwd"}')
    else:  # over_limit_chunked: no Content-Length, so the limit must stop the reading itself
        headers, body = _multipart({"file": ("big.mp4", bytes(1_200_000))})
        with httpx.Client(base_url=server.url) as client:
            r = client.post("/v1/predict", headers=headers,
                            content=(body[i:i + 65536] for i in range(0, len(body), 65536)))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert words in error and "\n" not in error
    assert "/tmp" not in error  # never the server's own paths
    _assert_clean(server)


def test_an_uploaded_file_name_never_becomes_a_path(server, assets, tmp_path):
    target = tmp_path / "written-by-request.mp4"
    headers, body = _multipart({"file": (f"../../../../../..{target}",
                                         assets["videos"][0].read_bytes())})
    assert _raw_post(server, headers, body).status_code == 200
    assert not target.exists()
    _assert_clean(server)


def test_unknown_routes_and_methods_answer_json(server):
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/nope").json() == {"error": "Not Found"}
        r = client.get("/v1/predict")
        assert r.status_code == 405 and "error" in r.json()


def test_client_gone_mid_upload(server, assets):
    metrics = server.app.state.vidcls.metrics["vidcls_requests_total"]
    before = metrics.value(endpoint="/v1/predict", status="499")
    headers, body = _multipart({"file": ("clip.mp4", assets["videos"][0].read_bytes() * 20)})
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: {headers['content-type']}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        sock.sendall(head + body[: len(body) // 3])
    deadline = time.monotonic() + 10
    while metrics.value(endpoint="/v1/predict", status="499") == before:
        assert time.monotonic() < deadline, "the server never saw the client leave"
        time.sleep(0.02)
    _assert_clean(server)


def test_token_guards_the_api_but_not_the_page(models, assets):
    with start_server(models, token="s3cret") as srv, httpx.Client(base_url=srv.url) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200
        for path in ("/v1/models", "/metrics"):
            r = client.get(path)
            assert r.status_code == 401 and "missing token" in r.json()["error"]
            assert r.headers["www-authenticate"] == "Bearer"
        r = client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json() == {"error": "wrong token"}
        r = client.get("/v1/models", headers={"Authorization": "Basic czNjcmV0"})
        assert r.status_code == 401
        with open(assets["videos"][1], "rb") as f:
            r = client.post("/v1/predict", files={"file": f})
        assert r.status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/models", headers=ok).status_code == 200
        with open(assets["videos"][1], "rb") as f:
            r = client.post("/v1/predict", files={"file": f}, headers=ok)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == CLASSES[1]


def test_metrics_in_prometheus_text_format(server, assets):
    with httpx.Client(base_url=server.url) as client:
        _post(client, assets["videos"][0])
        client.get("/nope")
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name, kind in [("vidcls_requests_total", "counter"), ("vidcls_errors_total", "counter"),
                       ("vidcls_request_duration_seconds", "histogram"),
                       ("vidcls_batch_size", "histogram"), ("vidcls_queue_depth", "gauge"),
                       ("vidcls_stream_connections", "gauge")]:
        assert f"# TYPE {name} {kind}" in text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(lines['vidcls_requests_total{endpoint="/v1/predict",status="200"}']) >= 1
    assert float(lines['vidcls_errors_total{endpoint="other",status="404"}']) >= 1
    assert lines['vidcls_request_duration_seconds_bucket{endpoint="/v1/predict",le="+Inf"}'] \
        == lines['vidcls_request_duration_seconds_count{endpoint="/v1/predict"}']
    assert lines['vidcls_queue_depth{model="tsm"}'] == "0"


def test_the_event_loop_answers_while_a_model_works(server, assets):
    """Decoding and inference run in worker threads: /healthz stays quick meanwhile."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        start = time.perf_counter()
        _post(client, assets["videos"][2], clips=10, crops=3)
        alone = time.perf_counter() - start
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(_post, client, assets["videos"][2], clips=10, crops=3)
            pings = []
            while not busy.done():
                t = time.perf_counter()
                client.get("/healthz")
                pings.append(time.perf_counter() - t)
            assert busy.result().status_code == 200
    assert len(pings) >= 2 and max(pings) < max(0.25, alone / 2), (pings, alone)


def test_stopping_leaves_no_thread_and_no_directory(assets):
    before = _vidcls_threads()
    srv = start_server(served_models(assets))
    upload_dir = srv.app.state.vidcls.upload_dir
    with httpx.Client(base_url=srv.url) as client:
        assert _post(client, assets["videos"][0]).status_code == 200
        assert _post(client, assets["not_video"]).status_code == 415
    assert _vidcls_threads() - before  # the pools were in use
    srv.stop()
    assert _vidcls_threads() == before
    assert not os.path.exists(upload_dir)
