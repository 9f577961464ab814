"""The real detector image: `make image` with the detector lock (~7 GB).

Under CI=true the suite builds it (into the test registry, from a copy of this checkout kept in
a cache folder, so the wheelhouse and docker's layers carry over and an unchanged image is not
built again: ~10 min cold, seconds when the registry has the tag). Elsewhere set
ENVTIERS_TEST_DETECTOR_IMAGE to an image built from this checkout, or the tests skip, saying so.
"""

from __future__ import annotations

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
    """Build (or find) the detector image in the test registry; returns repository@digest."""
    from envtiers.image.builder import build
    from envtiers.settings import load_project

    root = detector_image_project()
    root.mkdir(parents=True, exist_ok=True)
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
    runs as the image's uid 1000: the model files are world-readable, as a model.tar.gz extracts."""
    from tests.detector.support import encode, leaf_image

    exported_model = request.getfixturevalue("exported_model")  # only once the image is known (TF, ~10 s)
    model = tmp_path / "model"
    shutil.copytree(exported_model.path, model)
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

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
