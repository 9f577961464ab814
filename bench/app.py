"""The front end: how long from an upload to boxes on the page, in a real browser, next to a
direct `POST /invocations` of the same image in the same run.

The page loads the `test`-config export (what `make run` trains) from its folder; the server is
`python -m detector serve` on the same export. Headless Chromium (Debian's `chromium`, driven
by Playwright) uploads sample-dataset photos: the first upload pays for TensorFlow and the model
(`st.cache_resource`); later uploads of new photos find the model loaded; re-uploading a photo
already seen finds its detections cached (`st.cache_data`) and only redraws.
"""

from __future__ import annotations

import http.client
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.detector import _free_port, _wait_ready
from bench.harness import REPO, BenchError, Context, say
from bench.report import Goal, Measurement, Row

MODULE = "app"
CONFIG = "test"
READY_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute('data-test-script-state') === 'notRunning'
    && document.querySelector('[data-testid="stFileUploaderDropzoneInput"]') !== null;
}"""
DONE_JS = """name => {
  const app = document.querySelector('[data-testid="stApp"]');
  const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
  return app && app.getAttribute('data-test-script-state') === 'notRunning'
    && document.body.innerText.includes(name + ': ') && images.length > 0
    && images.every(img => img.complete && img.naturalWidth > 0);
}"""


def _photos(count: int) -> list[tuple[str, bytes]]:
    from detector.sample import JPEG_QUALITY, render_image

    photos = []
    for index in range(count):
        image, _ = render_image(seed=0, index=index, size=256)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        photos.append((f"photo-{index}.jpg", buffer.getvalue()))
    return photos


def _export(ctx: Context) -> Path:
    import keras

    from detector.data import ClassMap
    from detector.export import export_model
    from detector.model import build_model, get_config
    from detector.sample import CLASSES

    config = get_config(CONFIG)
    class_map = ClassMap(tuple(spot.name for spot in CLASSES))
    keras.utils.set_random_seed(0)
    model = build_model(config, num_classes=len(class_map))
    return export_model(model, config, class_map, ctx.tempdir("export") / "model").path


def _upload_to_boxes(browser: Any, url: str, name: str, data: bytes, *, from_open: bool = False) -> float:
    """A fresh session (no sample photo), one upload, seconds until its boxes are drawn; counted
    from opening the page when ``from_open`` (the page loads its model as it opens)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        opened = time.perf_counter()
        page.goto(f"{url}/?sample=0")
        page.wait_for_function(READY_JS, timeout=600_000)
        started = opened if from_open else time.perf_counter()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            [{"name": name, "mimeType": "image/jpeg", "buffer": data}]
        )
        page.wait_for_function(DONE_JS, arg=name, timeout=600_000, polling=20)
        seconds = time.perf_counter() - started
        if f"{name}: " not in page.inner_text("body"):
            raise BenchError(f"{name} has no detections line on the page")
        return seconds
    finally:
        context.close()


def _invoke(port: int, data: bytes) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", "/invocations", body=data, headers={"Content-Type": "image/jpeg"})
    response = connection.getresponse()
    response.read()
    seconds = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise BenchError(f"/invocations answered {response.status}")
    return seconds


def bench_upload(ctx: Context) -> list[Row]:
    """Upload to boxes in the browser (first, model cached, detections cached) vs /invocations."""
    from playwright.sync_api import sync_playwright

    from detector.app.launch import streamlit_command, streamlit_env
    from tests.detector.app.support import CHROMIUM, CHROMIUM_FLAGS

    if not CHROMIUM.is_file():
        raise BenchError(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver")
    export = _export(ctx)
    count = ctx.reps(8, 3)
    photos = _photos(count + 1)
    app_port, serve_port = _free_port(), _free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    logs = ctx.tempdir("logs")
    command = streamlit_command(host="127.0.0.1", port=app_port, model_dir=export)
    with open(logs / "app.log", "wb") as app_log, open(logs / "serve.log", "wb") as serve_log:
        app = subprocess.Popen(command, cwd=REPO, env=streamlit_env(), stdout=app_log, stderr=subprocess.STDOUT)
        server = subprocess.Popen(
            [sys.executable, "-m", "detector", "serve", "--model-dir", str(export), "--port", str(serve_port)],
            cwd=REPO,
            stdout=serve_log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(app_url, app, path="/_stcore/health")
        _wait_ready(f"http://127.0.0.1:{serve_port}", server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            first_name, first_data = photos[0]
            first = _upload_to_boxes(browser, app_url, first_name, first_data, from_open=True)
            say(f"  first upload to boxes {first:.1f} s (TensorFlow + model load + predict)")
            model_cached, detections_cached, direct = [], [], []
            for name, data in photos[1:]:
                model_cached.append(_upload_to_boxes(browser, app_url, name, data))
                detections_cached.append(_upload_to_boxes(browser, app_url, name, data))
                direct.append(_invoke(serve_port, data))
            browser.close()
    finally:
        for process in (app, server):
            process.terminate()
            process.wait(timeout=60)
    size = len(first_data)
    command_text = f"Chromium: upload a {size} B sample JPEG, wait for its boxes"
    direct_measure = Measurement("POST /invocations", f"http.client POST of the same JPEG ({count}x)", direct)
    notes = [
        "Browser times run from the file input being set to the drawn image being loaded with the script "
        "idle; each upload is a fresh session. /invocations is the same export behind `python -m detector serve`.",
        f"The {CONFIG} config, untrained (seeded): the model's work is the same as a trained one's.",
    ]
    return [
        Row(
            id="upload-first",
            benchmark="upload",
            title="App: first page open + upload to boxes (TF import, model load, predict, draw) vs /invocations",
            envtiers=Measurement("app, first open + upload", f"{command_text}, from opening the page", [first]),
            alternative=direct_measure,
            notes=notes,
        ),
        Row(
            id="upload-model-cached",
            benchmark="upload",
            title="App: upload to boxes with the model cached (st.cache_resource) vs /invocations",
            envtiers=Measurement("app, model cached", f"{command_text} ({count} new photos)", model_cached),
            alternative=direct_measure,
            goal=Goal("value_at_most", 1.0),
            notes=notes,
        ),
        Row(
            id="upload-detections-cached",
            benchmark="upload",
            title="App: re-upload of a photo already seen (detections cached, st.cache_data) vs /invocations",
            envtiers=Measurement("app, detections cached", f"{command_text} (again)", detections_cached),
            alternative=direct_measure,
            goal=Goal("value_at_most", 1.0),
            notes=notes,
        ),
    ]


BENCHMARKS = {"upload": bench_upload}
