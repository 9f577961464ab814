"""`docker run` of an image built from a tiny lock with the real Dockerfile: the locked versions,
the completion marker, a non-root user, no secret anywhere in the image's metadata, and the
serving contract (`docker run IMAGE serve`: /ping and /invocations on 8080)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from envtiers.image.builder import BuildResult, build
from envtiers.settings import Project
from tests.image.support import Infra, docker

pytestmark = pytest.mark.docker


@pytest.fixture
def built(image_project: Project) -> BuildResult:
    result = build(image_project)
    assert result.record is not None
    return result


def run_python(reference: str, code: str) -> str:
    return docker("run", "--rm", reference, "python", "-c", code).stdout


def test_the_locked_versions_and_the_marker_are_in_the_image(built: BuildResult) -> None:
    assert built.record is not None
    found = json.loads(
        run_python(
            built.record.reference,
            "import json, sys, shutil, importlib.metadata as m, purepkg, platpkg; print(json.dumps({"
            "'purepkg': purepkg.__version__, 'platpkg': platpkg.__version__, 'prefix': sys.prefix,"
            "'version': list(sys.version_info[:2]), 'tar': shutil.which('tar'), 'python': shutil.which('python'),"
            "'marker': json.load(open(sys.prefix + '/.envtiers-complete.json')),"
            "'dists': sorted(d.metadata['Name'] for d in m.distributions())}))",
        )
    )
    assert found["purepkg"] == "2.0" and found["platpkg"] == "1.0"  # the lock's pins, not just any
    assert found["version"] == [3, 11]
    assert found["prefix"] == "/opt/envtiers/env"
    assert found["python"] == "/opt/envtiers/env/bin/python" and found["tar"]
    assert found["marker"]["tier"] == "image" and found["marker"]["key"] == built.spec.lock_hash
    assert {"purepkg", "platpkg"} <= set(found["dists"])


def test_the_user_is_not_root_and_metaflow_will_not_pip_install(built: BuildResult) -> None:
    assert built.record is not None
    assert docker("run", "--rm", built.record.reference, "id", "-u").stdout.strip() == "1000"
    env = docker("run", "--rm", built.record.reference, "env").stdout
    assert "METAFLOW_SKIP_INSTALL_DEPENDENCIES=1" in env


def test_labels_name_the_base_and_the_lock(built: BuildResult) -> None:
    assert built.record is not None
    labels_json = docker("image", "inspect", "--format", "{{json .Config.Labels}}", built.record.reference).stdout
    labels = json.loads(labels_json)
    assert labels["org.opencontainers.image.base.name"] == built.spec.base_image
    assert labels["org.opencontainers.image.base.digest"] == built.spec.base_digest
    assert labels["io.envtiers.lock-hash"] == built.spec.lock_hash
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert {"org.opencontainers.image.source", "org.opencontainers.image.revision"} <= set(labels)


def test_no_secret_in_history_inspect_or_labels(image_project: Project, registry_login: Infra, monkeypatch) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    # Secrets a build machine typically holds: none of them may reach the image's metadata.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    monkeypatch.setenv("PIP_INDEX_URL", f"https://user:{canary}@pypi.example.com/simple")
    result = build(image_project)
    assert result.record is not None
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", result.record.reference).stdout
    inspect = docker("image", "inspect", result.record.reference).stdout
    for text in (history, inspect):
        assert canary not in text
        assert registry_login.password not in text
        assert "ENVTIERS_REGISTRY_PASSWORD" not in text
    # The registry password never went to the user's docker config or the project.
    assert registry_login.password not in (image_project.root / "lockfiles" / "image.json").read_text()


def test_the_serving_entrypoint_answers_ping_and_invocations(built: BuildResult) -> None:
    """SageMaker's contract: `docker run IMAGE serve`, HTTP on 8080 (published on a free port)."""
    assert built.record is not None
    name = f"envtiers-serve-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", built.record.reference, "serve")
    try:
        port = docker("port", name, "8080").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(docker("logs", name, check=False).stdout) from None
                time.sleep(0.3)
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps({"instances": [[1, 2, 3], [4]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
        assert answer == {"predictions": [3, 1], "purepkg": "2.0"}
    finally:
        docker("rm", "-f", name, check=False)
