"""The app as a user meets it: `streamlit run` of the page on 127.0.0.1 (a free port) and a real
headless Chromium (Debian's `chromium`, driven by Playwright; no browser is downloaded)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.app.launch import streamlit_command, streamlit_env
from detector.app.view import colour_for

CHROMIUM = Path(os.environ.get("ENVTIERS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
START_TIMEOUT = 120
# A first prediction loads TensorFlow and the model; on a busy 2-core machine that takes minutes.
PAGE_TIMEOUT_MS = 600_000


def require_chromium() -> None:
    """Skip without Chromium, except under CI, where a missing browser is a failure (.ci/run installs it)."""
    if CHROMIUM.is_file():
        return
    message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class App:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_app(cwd: Path, log_path: Path, *, env: Mapping[str, str] | None = None, **page: Any) -> Iterator[App]:
    """The page served from ``cwd`` (where Metaflow looks for .metaflow); waits for its health check."""
    port = free_port()
    command = streamlit_command(host="127.0.0.1", port=port, **page)
    with open(log_path, "wb") as output:
        process = subprocess.Popen(command, cwd=cwd, env=streamlit_env(env), stdout=output, stderr=subprocess.STDOUT)
    app = App(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_healthy(app.url, alive=lambda: process.poll() is None, logs=app.log)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(url: str, *, alive: Callable[[], bool], logs: Callable[[], str]) -> None:
    """Poll Streamlit's health check until it answers 200 (AssertionError with the logs if it dies)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if not alive() or time.monotonic() > deadline:
            raise AssertionError(f"the app did not start: {logs()[-3000:]}")
        time.sleep(0.3)


@contextmanager
def browser_page(url: str) -> Iterator[Any]:
    """A Chromium page open at ``url`` (for tests outside test_page.py's module fixtures)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            page = context.new_page()
            page.goto(url)
            yield page
        finally:
            browser.close()


def settle(page: Any) -> None:
    """Wait for the rerun an action started to finish: until then the page shows stale elements."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    running = page.locator('[data-testid="stApp"][data-test-script-state="running"]')
    with suppress(PlaywrightTimeout):  # the rerun was over before we looked
        running.wait_for(state="attached", timeout=3000)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(state="attached")


def main_text(page: Any) -> str:
    return str(page.locator('[data-testid="stMain"]').inner_text())


def wait_for_text(page: Any, pattern: str, *, where: str = '[data-testid="stApp"]') -> re.Match[str]:
    """Wait until the page's text matches ``pattern`` and the script has finished; the match."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').count() == 1
        match = regex.search(page.locator(where).inner_text())
        if idle and match:
            return match
        time.sleep(0.25)
    raise AssertionError(f"no {pattern!r} on the page; it shows:\n{page.locator(where).inner_text()[-3000:]}")


def shown_count(page: Any, name: str) -> int:
    return int(wait_for_text(page, rf"{re.escape(name)}: (\d+) detections shown")[1])


def model_calls(page: Any) -> int:
    return int(wait_for_text(page, r"Model calls so far: (\d+)")[1])


def upload(page: Any, files: list[tuple[str, str, bytes]]) -> None:
    """Put (name, MIME type, bytes) files into the page's uploader, as a drag-and-drop would."""
    payload = [{"name": name, "mimeType": mime, "buffer": data} for name, mime, data in files]
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(payload)
    settle(page)


def click(page: Any, text: str) -> None:
    page.get_by_text(text, exact=True).click()
    settle(page)


def choose_mode(page: Any, mode: str) -> None:
    page.locator('[data-testid="stSidebar"] [role="radiogroup"]').get_by_text(mode, exact=True).click()
    settle(page)


def fill(page: Any, label: str, value: str) -> None:
    box = page.locator('[data-testid="stTextInput"]').filter(has_text=label).locator("input")
    box.fill(value)
    box.press("Enter")
    settle(page)


def select(page: Any, label: str, option: str) -> None:
    """Pick the option starting with ``option`` in the selectbox labelled ``label``."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(option)}")).first.click()
    settle(page)


def set_slider(page: Any, label: str, steps: int) -> None:
    """Move a slider ``steps`` steps right (negative: left) with the keyboard, as a user can."""
    slider = page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")
    slider.focus()
    for _ in range(abs(steps)):
        slider.press("ArrowRight" if steps > 0 else "ArrowLeft")
    settle(page)


def colour_pixels(png: bytes, class_ids: set[int], *, tolerance: int = 40) -> dict[int, int]:
    """How many pixels of a screenshot are (near) each class's box colour."""
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    counts = {}
    for class_id in class_ids:
        distance = np.abs(pixels - np.array(colour_for(class_id))).max(axis=-1)
        counts[class_id] = int((distance <= tolerance).sum())
    return counts
