"""The front end in a real browser: headless Chromium against `streamlit run` of the page.

One app serves every test here (each test opens a new browser page, i.e. a new session), from a
folder whose local datastore starts empty; the runs test then makes two real DetectorFlow runs
there, which the running page picks up: A (the `test` model, one epoch, `--environment=local`)
and B, a resume of A from its deploy step (a second successful run with its own export: cheaper
than a second training, so the two show the same detections). The fixed model for the
upload tests is the session's export fixture (tests/detector/conftest.py), loaded by the page
from its folder and, in endpoint mode, served by `python -m detector serve`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector import config
from detector.app.sources import sample_upload
from detector.app.view import DEFAULT_THRESHOLD, visible
from detector.export import load_exported
from detector.sample import generate_sample
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
from tests.flows.support import DETECTOR_FLOW, client, flow_env, run_flow, run_id_of

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RUN_ARGS = ["--model-config", "test", "--epochs", "1", "--wandb-mode", "disabled"]
THRESHOLD = DEFAULT_THRESHOLD
STEP = 0.05
# Where the README's screenshot is written (git-ignored build/; docs/app.png is a copy of it).
SCREENSHOT = config.PROJECT_ROOT / "build" / "app" / "app.png"


@dataclass(frozen=True)
class Runs:
    base: Path
    a: str
    b: str
    env: dict[str, str | None]

    def export(self, run_id: str) -> Path:
        return self.base / "runs" / "DetectorFlow" / run_id / "export" / "model"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's working folder: an empty local datastore (.metaflow) the runs test fills later."""
    folder = tmp_path_factory.mktemp("app-runs")
    (folder / ".metaflow").mkdir()
    generate_sample(folder / "sample", images=12, seed=3, size=128)
    return folder


def flow_variables(base: Path) -> dict[str, str | None]:
    return {"DETECTOR_RUNS_DIR": str(base / "runs"), "DETECTOR_FAIL_AT": None}


@pytest.fixture(scope="module")
def runs(base: Path) -> Runs:
    env = flow_variables(base)
    local = ["--environment=local"]
    a = run_flow(DETECTOR_FLOW, [*local, "run", "--data", str(base / "sample"), *RUN_ARGS], cwd=base, env=env)
    assert a.returncode == 0, a.stdout[-4000:]
    b = run_flow(DETECTOR_FLOW, [*local, "resume", "deploy", "--origin-run-id", run_id_of(a.stdout)], cwd=base, env=env)
    assert b.returncode == 0, b.stdout[-4000:]
    return Runs(base, run_id_of(a.stdout), run_id_of(b.stdout), env)


@pytest.fixture(scope="module")
def app(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    cache = tmp_path_factory.mktemp("app-cache")
    variables = {**flow_variables(base), "DETECTOR_APP_CACHE_DIR": str(cache)}
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


@pytest.mark.timeout(3600)  # two flow runs: minutes on a busy 2-core machine
def test_runs_latest_by_default_any_by_id_and_compared(runs: Runs, page: Any) -> None:
    summaries = client(
        f"""
        result = {{}}
        for run_id in ("{runs.a}", "{runs.b}"):
            data = Run("DetectorFlow/" + run_id).end_task.data
            result[run_id] = {{"ap50": data.eval_result["ap50"], "ap_per_class": data.eval_result["ap_per_class"]}}
        """,
        cwd=runs.base,
        env=runs.env,
    )
    _, sample = sample_upload()
    # Default: the latest successful run (B), its tier, lock and AP50 in the sidebar.
    sidebar = '[data-testid="stSidebar"]'
    wait_for_text(page, rf"run: DetectorFlow/{runs.b}", where=sidebar)
    info = page.locator(sidebar).inner_text()
    assert "tier: local" in info and f"AP50: {summaries[runs.b]['ap50']:.3f}" in info
    b_model = load_exported(runs.export(runs.b))
    assert shown_count(page, "sample-leaf.jpg") == len(expected(b_model, sample))

    choose_mode(page, "Run by id")
    select(page, "Run", runs.a)
    wait_for_text(page, rf"run: DetectorFlow/{runs.a}", where=sidebar)
    a_model = load_exported(runs.export(runs.a))
    assert shown_count(page, "sample-leaf.jpg") == len(expected(a_model, sample))

    # Compare: run A's picker starts on the latest run (B), run B's on the one before (A).
    click(page, "Compare runs")
    wait_for_text(page, rf"Run {runs.b}[\s\S]*Run {runs.a}[\s\S]*AP per class")
    assert len(re.findall(r"sample-leaf\.jpg: \d+ detections shown", main_text(page))) == 2
    table = page.locator('[data-testid="stTable"]').last.inner_text()
    for name, ap in summaries[runs.b]["ap_per_class"].items():
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
