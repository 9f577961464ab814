"""The front end in a real browser: headless Chromium against `streamlit run` of the page.

One app serves every test here (each test opens a new browser page, i.e. a new session), from a
folder whose local datastore starts empty; the runs test then copies two real DetectorFlow runs
into it, which the running page picks up. They are runs A and C of the session's
`detector_flow_runs` (tests/conftest.py; pip tier, the `test` model, one epoch), the runs
tests/flows/test_detector_flow.py checks: CI trains the flow once for both modules instead of
running it again here. A is a full run, C a resume of A's failed resume from evaluate_model, so
each has its own export (beside its `model_location`, under the flow runs' folder) from the same
training, and the two show the same detections. The fixed model for the upload tests is the
session's export fixture (tests/detector/conftest.py), loaded by the page from its folder and,
in endpoint mode, served by `python -m detector serve`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector import config
from detector.app.sources import sample_upload
from detector.app.view import DEFAULT_THRESHOLD, visible
from detector.export import load_exported
from detector.serve import decode_image_bytes
from tests.detector.app.support import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PAGE_TIMEOUT_MS,
    App,
    choose_mode,
    click,
    colour_pixels,
    fill,
    free_port,
    main_text,
    model_calls,
    require_chromium,
    running_app,
    select,
    set_slider,
    shown_count,
    upload,
    wait_for_text,
)
from tests.detector.conftest import ExportedFixture
from tests.detector.support import encode, leaf_image
from tests.detector.test_serve import start_server
from tests.flows.support import FlowRuns, client, flow_env, run_id_of

pytestmark = [pytest.mark.slow, pytest.mark.browser]

THRESHOLD = DEFAULT_THRESHOLD
STEP = 0.05
# Where the README's screenshot is written (git-ignored build/; docs/app.png is a copy of it).
SCREENSHOT = config.PROJECT_ROOT / "build" / "app" / "app.png"


@dataclass(frozen=True)
class Runs:
    """Two successful runs in the app's datastore: `a`, then `c` (the latest); their exports stay
    where the deploy steps wrote them, under `flow_base`."""

    base: Path
    flow_base: Path
    a: str
    c: str
    env: dict[str, str | None]

    def export(self, run_id: str) -> Path:
        return self.flow_base / "runs" / "DetectorFlow" / run_id / "export" / "model"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's working folder: an empty local datastore (.metaflow) the runs test fills later."""
    folder = tmp_path_factory.mktemp("app-runs")
    (folder / ".metaflow").mkdir()
    return folder


def app_variables(base: Path) -> dict[str, str | None]:
    """Settings for the page and the Client API here: nothing of the caller's runs folder or
    injected failure."""
    return {"DETECTOR_RUNS_DIR": str(base / "runs"), "DETECTOR_FAIL_AT": None}


@pytest.fixture(scope="module")
def runs(base: Path, detector_flow_runs: FlowRuns) -> Runs:
    """The session's flow runs, their local datastore copied into the app's (only now: the tests
    before this one see no run). The page lists the runs and reads their metadata from the copy;
    each artifact record names the datastore root it was written to (the flow runs' .metaflow,
    an absolute path), so artifact values are read from there, as are the exports."""
    flow = detector_flow_runs
    shutil.copytree(flow.base / ".metaflow", base / ".metaflow", dirs_exist_ok=True)
    return Runs(base, flow.base, run_id_of(flow.a.stdout), run_id_of(flow.c.stdout), app_variables(base))


@pytest.fixture(scope="module")
def app(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    cache = tmp_path_factory.mktemp("app-cache")
    variables = {**app_variables(base), "DETECTOR_APP_CACHE_DIR": str(cache)}
    env = {k: v for k, v in flow_env(variables).items() if v is not None}
    with running_app(base, base / "app.log", env=env) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, app: App) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    opened = context.new_page()
    opened.goto(app.url)
    yield opened
    context.close()


def expected(predictor: Any, data: bytes, threshold: float = THRESHOLD) -> list[Any]:
    return visible(predictor.predict(decode_image_bytes(data)), threshold=threshold)


def use_export(page: Any, folder: Path) -> None:
    choose_mode(page, "Export folder")
    fill(page, "Export folder", str(folder))
    wait_for_text(page, re.escape(f"Model: export {folder}"))


def test_upload_shows_the_models_detections_boxes_and_the_slider_filters_them(
    page: Any, exported_model: ExportedFixture, predictor: Any
) -> None:
    use_export(page, exported_model.path)
    _, sample = sample_upload()
    assert shown_count(page, "sample-leaf.jpg") == len(expected(predictor, sample))
    page.locator('[data-testid="stImage"] img').first.wait_for()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))  # the main view, for the README
    click(page, "Add the bundled sample photo")  # only the upload from here on
    image = leaf_image(240, 180, seed=21)
    png = encode(image, "PNG")
    upload(page, [("leaf.png", "image/png", png)])
    want = expected(predictor, png)
    assert want, "the fixture model should detect something at the default threshold"
    assert shown_count(page, "leaf.png") == len(want)
    # The table lists exactly those detections, best first.
    rows = page.locator('[data-testid="stTable"]').first.locator("tbody tr").all_inner_texts()
    assert [row.split("\t")[0].strip() for row in rows] == [d["class_name"] for d in want]

    # The boxes are drawn: each detected class's colour covers at least a box outline's pixels
    # more on the page than in the uploaded image.
    picture = page.locator('[data-testid="stImage"] img').first
    picture.wait_for()
    drawn = colour_pixels(picture.screenshot(), {d["class_id"] for d in want})
    plain = colour_pixels(png, set(drawn))
    for class_id, count in drawn.items():
        assert count - plain[class_id] >= 60, (class_id, count, plain[class_id])

    calls = model_calls(page)
    scores = sorted(d["score"] for d in want)
    steps = next(i for i in range(1, 20) if THRESHOLD + i * STEP > scores[0])
    set_slider(page, "Confidence threshold", steps)
    higher = expected(predictor, png, THRESHOLD + steps * STEP)
    assert len(higher) < len(want)
    assert int(wait_for_text(page, rf"leaf\.png: ({len(higher)}) detections shown")[1]) == len(higher)
    assert model_calls(page) == calls, "moving the slider re-ran the model"


def test_a_text_file_or_an_oversized_image_gets_a_message_and_the_page_carries_on(
    page: Any, exported_model: ExportedFixture, predictor: Any
) -> None:
    use_export(page, exported_model.path)
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, size=(1600, 1600, 3), dtype=np.uint8)
    big = encode(noise, "PNG")
    assert len(big) > config.MAX_REQUEST_BYTES
    upload(page, [("notes.png", "image/png", b"shopping list: tomatoes, basil\n"), ("huge.png", "image/png", big)])
    wait_for_text(page, r"notes\.png is not a JPEG or PNG image")
    wait_for_text(page, r"huge\.png is [\d.]+ MiB, over the 6 MiB")
    text = main_text(page)
    assert "Traceback" not in text and "upload a JPEG or PNG photo" in text
    # A good upload after the bad ones works.
    png = encode(leaf_image(200, 150, seed=5), "PNG")
    upload(page, [("good.png", "image/png", png)])
    assert shown_count(page, "good.png") == len(expected(predictor, png))


def test_endpoint_mode_against_the_detector_server(
    page: Any, exported_model: ExportedFixture, predictor: Any, tmp_path: Path
) -> None:
    server = start_server(exported_model.path, tmp_path / "server.log", "--port", "0")  # never a fixed 8080
    try:
        choose_mode(page, "Endpoint URL")
        fill(page, "Endpoint URL", f"http://{server.host}:{server.port}")
        jpeg = encode(leaf_image(160, 200, seed=8), "JPEG")
        click(page, "Add the bundled sample photo")
        upload(page, [("leaf.jpg", "image/jpeg", jpeg)])
        assert shown_count(page, "leaf.jpg") == len(expected(predictor, jpeg))
        assert "path=/invocations status=200" in server.log() and "images=1" in server.log()
        # A URL nothing listens on: a message saying so and how to start a server.
        fill(page, "Endpoint URL", f"http://127.0.0.1:{free_port()}")
        wait_for_text(page, r"cannot reach the endpoint http://127\.0\.0\.1:\d+/invocations")
        assert "python -m detector serve" in main_text(page)
    finally:
        server.process.terminate()
        server.process.wait(30)


@pytest.mark.timeout(3600)  # may make the session's three flow runs: minutes on a busy 2-core machine
def test_runs_latest_by_default_any_by_id_and_compared(runs: Runs, page: Any) -> None:
    summaries = client(
        f"""
        result = {{}}
        for run_id in ("{runs.a}", "{runs.c}"):
            data = Run("DetectorFlow/" + run_id).end_task.data
            result[run_id] = {{"ap50": data.eval_result["ap50"], "ap_per_class": data.eval_result["ap_per_class"]}}
        """,
        cwd=runs.base,
        env=runs.env,
    )
    _, sample = sample_upload()
    # Default: the latest successful run (C), its tier, lock and AP50 in the sidebar.
    sidebar = '[data-testid="stSidebar"]'
    wait_for_text(page, rf"run: DetectorFlow/{runs.c}", where=sidebar)
    info = page.locator(sidebar).inner_text()
    assert "tier: pip" in info and f"AP50: {summaries[runs.c]['ap50']:.3f}" in info
    c_model = load_exported(runs.export(runs.c))
    assert shown_count(page, "sample-leaf.jpg") == len(expected(c_model, sample))

    choose_mode(page, "Run by id")
    select(page, "Run", runs.a)
    wait_for_text(page, rf"run: DetectorFlow/{runs.a}", where=sidebar)
    a_model = load_exported(runs.export(runs.a))
    assert shown_count(page, "sample-leaf.jpg") == len(expected(a_model, sample))

    # Compare: the "Run A" picker starts on the latest run (C), "Run B" on the one before (A).
    click(page, "Compare runs")
    wait_for_text(page, rf"Run {runs.c}[\s\S]*Run {runs.a}[\s\S]*AP per class")
    assert len(re.findall(r"sample-leaf\.jpg: \d+ detections shown", main_text(page))) == 2
    table = page.locator('[data-testid="stTable"]').last.inner_text()
    for name, ap in summaries[runs.c]["ap_per_class"].items():
        assert re.search(rf"{re.escape(name)}\s+{'n/a' if ap is None else f'{ap:.3f}'}", table), table


def test_no_trained_run_yet_names_make_run(browser: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in flow_env().items() if v is not None}
    with running_app(tmp_path, tmp_path / "app.log", env=env) as empty:
        context = browser.new_context()
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        opened = context.new_page()
        opened.goto(empty.url)
        wait_for_text(opened, r"no successful DetectorFlow run yet")
        assert "make run" in main_text(opened) and "Traceback" not in main_text(opened)
        context.close()
