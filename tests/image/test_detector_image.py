"""The real detector image: `make image` with the detector lock (~7 GB).

Under CI=true the suite builds it (into the test registry, from a copy of this checkout kept in
a cache folder, so the wheelhouse and docker's layers carry over and an unchanged image is not
built again: ~10 min cold, seconds when the registry has the tag). `.ci/run` starts that build in
the background before the suite (`python -m tests.image.prebuild`), so its downloads and pushes
overlap the CPU-bound tests; the build holds a file lock, and the fixture here waits for it and
then finds the tag in the registry (or builds, and fails with the build's error, itself).
Elsewhere set ENVTIERS_TEST_DETECTOR_IMAGE to an image built from this checkout, or the tests
skip, saying so.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.image.support import Infra, docker
from tests.support import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# What `envtiers image build` reads and the Dockerfile copies (build/ holds the wheelhouse: kept).
IMAGE_INPUTS = ("envs", "lockfiles", "docker", "detector", ".dockerignore")


def detector_image_project() -> Path:
    """Where CI builds the detector image from (a copy of the checkout; its lockfiles/image.json
    is the record of the last build)."""
    cache = Path(os.environ.get("ENVTIERS_CI_CACHE", Path.home() / ".cache" / "envtiers-ci"))
    return cache / "detector-image-project"


def build_detector_image(infra: Infra) -> str:
    """Build (or find) the detector image in the test registry; returns repository@digest.
    One build at a time (a file lock beside the project copy): a second caller waits, then finds
    the tag the first one pushed."""
    root = detector_image_project()
    root.mkdir(parents=True, exist_ok=True)
    with (root.parent / "detector-image.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        return _build_detector_image(root, infra)


def _build_detector_image(root: Path, infra: Infra) -> str:
    from envtiers.image.builder import build
    from envtiers.settings import load_project

    for name in IMAGE_INPUTS:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        source = REPO_ROOT / name
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "image.json")
        shutil.copytree(source, target, ignore=ignore) if source.is_dir() else shutil.copy2(source, target)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVTIERS_REGISTRY_USER", infra.user)
        patch.setenv("ENVTIERS_REGISTRY_PASSWORD", infra.password)
        result = build(
            load_project(root), registry=f"{infra.registry}/envtiers-ci", base_image=infra.base_image, report=print
        )
    assert result.record is not None
    return result.record.reference


def detector_image_reference(request: pytest.FixtureRequest) -> str:
    """ENVTIERS_TEST_DETECTOR_IMAGE, else (CI only) the image built here; skips elsewhere."""
    reference = os.environ.get("ENVTIERS_TEST_DETECTOR_IMAGE")
    if reference:
        return reference
    if os.environ.get("CI") != "true":
        pytest.skip("ENVTIERS_TEST_DETECTOR_IMAGE is not set, and only CI=true builds the ~7 GB detector image")
    from tests.image.support import docker_ready, infra_from_env

    reason = docker_ready()
    if reason is not None:
        pytest.fail(f"CI must run the docker tests: {reason}")
    return build_detector_image(infra_from_env())


@pytest.fixture(scope="module")
def detector_image(request: pytest.FixtureRequest) -> str:
    return detector_image_reference(request)


def readable_export(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A copy of the session's export with the modes `detector export` gave it (0755/0644), so the
    image's uid 1000 reads it as it would a model.tar.gz SageMaker extracted.

    The fixture is asked for only here, once the image is known (it loads TensorFlow, ~10 s)."""
    exported_model = request.getfixturevalue("exported_model")
    model = tmp_path / "model"
    shutil.copytree(exported_model.path, model)
    return model


def test_tensorflow_in_the_image_is_built_with_cuda(detector_image: str) -> None:
    code = (
        "import json, os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import tensorflow as tf, keras_cv, metaflow;"
        "print('RESULT=' + json.dumps([tf.test.is_built_with_cuda(), tf.__version__, keras_cv.__version__]))"
    )
    out = docker("run", "--rm", detector_image, "python", "-c", code).stdout
    cuda, tf_version, _ = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT="))[7:])
    assert cuda is True
    assert tf_version.startswith("2.")


def test_serve_answers_ping_and_invocations_with_an_export(
    detector_image: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`docker run IMAGE serve` with an export at /opt/ml/model, as SageMaker runs it. The server
    runs as the image's uid 1000, and reads the export as `detector export` wrote it (0755/0644)."""
    from tests.detector.support import encode, leaf_image

    model = readable_export(request, tmp_path)

    name = f"envtiers-detector-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name, "-p", "127.0.0.1::8080",
        "-v", f"{model}:/opt/ml/model:ro", detector_image, "serve",
    )  # fmt: skip
    try:
        port = docker("port", name, "8080").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # the server listens once the model is loaded and warm
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                running = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
                if time.monotonic() > deadline or not running:
                    raise AssertionError(docker("logs", name, check=False).stderr[-3000:]) from None
                time.sleep(1)
        request = urllib.request.Request(
            f"{base}/invocations", data=encode(leaf_image(160, 120, seed=1)), headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        (detections,) = answer["predictions"]  # one image in, one list of detections out
        assert isinstance(detections, list) and all(isinstance(d, dict) for d in detections)
    finally:
        docker("rm", "-f", name, check=False)


def test_app_serves_the_page_on_an_export(detector_image: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """`docker run IMAGE app --model-dir /opt/ml/model`: the front end in the image, seen in a browser."""
    from detector.app.sources import sample_upload
    from detector.app.view import DEFAULT_THRESHOLD, visible
    from detector.serve import decode_image_bytes
    from tests.detector.app.support import browser_page, require_chromium, shown_count, wait_healthy

    require_chromium()
    model = readable_export(request, tmp_path)
    predictor = request.getfixturevalue("predictor")
    name = f"envtiers-app-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name, "-p", "127.0.0.1::8501",
        "-v", f"{model}:/opt/ml/model:ro", detector_image, "app", "--model-dir", "/opt/ml/model",
    )  # fmt: skip
    try:
        port = docker("port", name, "8501").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"

        def running() -> bool:
            return docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"

        wait_healthy(url, alive=running, logs=lambda: docker("logs", name, check=False).stderr)
        _, sample = sample_upload()
        want = visible(predictor.predict(decode_image_bytes(sample)), threshold=DEFAULT_THRESHOLD)
        with browser_page(url) as page:
            assert shown_count(page, "sample-leaf.jpg") == len(want)
    finally:
        docker("rm", "-f", name, check=False)
