"""``vidcls serve`` on the command line: the refusals come before any model is loaded, one
line each with status 2; a real start serves the page and API and stops on SIGINT."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from vidcls.cli import main

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("argv, words", [
    ([], "no model to serve: give --model NAME or --checkpoint DIR"),
    (["--checkpoint", "CKPT", "--host", "0.0.0.0"],
     "refusing to listen on 0.0.0.0 without a token"),
    (["--checkpoint", "CKPT", "--token-file", "EMPTY"], "is empty; put a secret in it"),
    (["--checkpoint", "CKPT", "--token-file", "MISSING"], "cannot read --token-file"),
    (["--checkpoint", "nowhere"], "checkpoint 'nowhere' not found"),
    (["--checkpoint", "CKPT", "--checkpoint", "CKPT"], "two models are named 'tsm'"),
    (["--checkpoint", "bad name=CKPT"], "not usable in a URL"),
    (["--checkpoint", "CKPT", "--max-batch", "0"], "max_batch must be > 0"),
    (["--checkpoint", "CKPT", "--device", "tpu"], "'tpu' is not a device"),
])
def test_refusals_are_one_line_with_status_2(assets, tmp_path, capsys, argv, words):
    (tmp_path / "empty").write_text("\n")
    subst = {"CKPT": str(assets["tsm"]), "EMPTY": str(tmp_path / "empty"),
             "MISSING": str(tmp_path / "missing"),
             "bad name=CKPT": f"bad name={assets['tsm']}"}
    assert main(["serve", *[subst.get(a, a) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidcls serve: error: ") and words in err and err.count("\n") == 1


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_starts_answers_and_stops_gracefully(assets, tmp_path, stop):
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidcls", "serve", "--checkpoint", f"demo={assets['tsm']}",
         "--checkpoint", str(assets["vit"]), "--port", "0", "--device", "cpu",
         "--token-file", str(token), "--log-level", "warning"],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        match = re.search(r"vidcls serve: demo, vit on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(url + "/healthz")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert r.json() == {"status": "ok"}
        assert "<title>vidcls serve</title>" in httpx.get(url + "/").text
        models = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer t0ken"}).json()
        assert [m["name"] for m in models["models"]] == ["demo", "vit"]
        with open(assets["videos"][2], "rb") as f:
            r = httpx.post(url + "/v1/predict", files={"file": f},
                           headers={"Authorization": "Bearer t0ken"})
        assert r.json()["model"] == "demo" and r.json()["predictions"][0]["label"] == "triangle"
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest and rest.endswith("vidcls serve: stopped\n"), rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
