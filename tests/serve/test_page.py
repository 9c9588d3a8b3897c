"""The page in a real browser: Debian's Chromium driven by Playwright (no browser download),
headless, with a fake camera replaying a generated .y4m clip.

* upload: the page shows, as top-1 and in its bars, what Predictor gives for the same file,
  with the sampled frames and their heat maps;
* webcam: getUserMedia -> frames over the WebSocket -> the page shows the label that
  StreamPredictor gives for the frames of the clip the camera replays;
* the page (and the offline API docs) load nothing from anywhere but 127.0.0.1.

Chromium missing is a failure, not a skip: ``.ci/run`` installs it (``apt-get install -y
chromium``). Screenshots go to ``$VIDCLS_TEST_ARTIFACTS`` (default: a pytest temporary dir).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from vidcls.inference.predict import Predictor
from vidcls.inference.stream import StreamPredictor, iter_frames
from serve.assets import CLASSES, WEBCAM_CLASS

pytestmark = pytest.mark.timeout(120)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium; "
                    ".ci/run installs it): the page tests need a real browser")
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = os.environ.get("VIDCLS_TEST_ARTIFACTS")
    path = Path(root) / "serve" if root else tmp_path_factory.mktemp("serve-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def _open_page(playwright, chromium, extra_args=()):
    """A fresh browser and page that may reach 127.0.0.1 only (anything else is aborted and
    recorded in ``page.blocked``)."""
    browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                         args=[*CHROMIUM_ARGS, *extra_args])
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    page.blocked = []
    page.console_errors = []

    def loopback_only(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            page.blocked.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    return browser, page


def test_upload_shows_the_predictor_classes_frames_and_heat_maps(server, assets, playwright,
                                                                  chromium, artifacts):
    browser, page = _open_page(playwright, chromium)
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready='true']")
        assert "tsm_resnet18" in page.inner_text("#model-info")
        for done, label in enumerate((2, 0), start=1):  # two clips: the label follows content
            video = assets["videos"][label]
            expected = Predictor(assets["tsm"])([video], top_k=5)[0]["predictions"]
            assert expected[0]["label"] == CLASSES[label] and expected[0]["probability"] > 0.9
            page.set_input_files("#file", str(video))
            page.click("#predict")
            page.wait_for_selector(f"#result[data-done='{done}']")
            assert page.inner_text("#top-label") == expected[0]["label"]
            assert page.locator("#bars .label").all_inner_texts() == [p["label"] for p in expected]
            shown = [float(s.rstrip(" %")) for s in page.locator("#bars .score").all_inner_texts()]
            assert shown == pytest.approx([100 * p["probability"] for p in expected], abs=0.051)
            assert page.locator("#frames img").count() == 8
            assert page.locator("#heatmaps img").count() == 8
            assert "Grad-CAM" in page.inner_text("#heatmaps-title")
            page.wait_for_function("[...document.querySelectorAll('#heatmaps img')]"
                                   ".every(img => img.complete && img.naturalWidth >= 96)")
            page.screenshot(path=str(artifacts / f"upload_{CLASSES[label]}.png"), full_page=True)
        assert page.inner_text("#error") == ""
        assert page.blocked == [] and page.console_errors == []
    finally:
        browser.close()


def test_webcam_shows_the_stream_predictor_label(server, assets, playwright, chromium,
                                                 artifacts):
    # what StreamPredictor says for the frames the fake camera replays (in a loop): one
    # label throughout, so it does not matter which frames the page happens to grab
    predictor = StreamPredictor(assets["tsm"], smooth=12, top_k=3)
    frames = list(iter_frames(assets["webcam_y4m"]))
    records = [predictor.step(rgb) for rgb in frames * 3]
    labels = {r["label"] for r in records}
    assert labels == {CLASSES[WEBCAM_CLASS]}, labels
    expected = records[-1]["label"]

    frames_before = server.app.state.vidcls.metrics["vidcls_stream_frames_total"].value(
        model="tsm", outcome="ok")
    browser, page = _open_page(playwright, chromium, [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={assets['webcam_y4m']}"])
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready='true']")
        page.click("#tab-webcam")
        page.click("#cam-start")
        page.wait_for_function("Number(document.getElementById('live-frames').textContent) >= 24",
                               timeout=60_000)
        assert page.inner_text("#live-label") == expected
        assert page.locator("#live-bars .label").all_inner_texts()[0] == expected
        assert float(page.inner_text("#live-fps")) > 0
        page.screenshot(path=str(artifacts / "webcam.png"), full_page=True)
        page.click("#cam-stop")
        assert page.inner_text("#webcam-status") == "stopped"
        assert page.blocked == [] and page.console_errors == []
    finally:
        browser.close()
    metrics = server.app.state.vidcls.metrics
    assert metrics["vidcls_stream_frames_total"].value(model="tsm", outcome="ok") \
        >= frames_before + 24  # the labels came over the WebSocket, from this model


def test_api_docs_render_offline(server, playwright, chromium):
    browser, page = _open_page(playwright, chromium)
    try:
        page.goto(server.url + "/docs")
        operation = page.locator(".opblock-summary-path", has_text="/v1/predict")
        operation.wait_for(timeout=30_000)
        assert "vidcls serve" in page.title()
        assert page.blocked == []
    finally:
        browser.close()
