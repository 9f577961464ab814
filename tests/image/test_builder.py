"""`envtiers image build` on a real docker engine and registry, with a tiny lock and the real
Dockerfile: build, push, skip when the registry has the tag, the digest recorded, layers reused
after a code-only change, hashes enforced inside the build."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from envtiers.check import check_project
from envtiers.image.builder import ImageBuildError, build, build_env, prepare_env_context
from envtiers.image.docker import session
from envtiers.image.record import read_record
from envtiers.image.spec import WHEELHOUSE, load_spec
from envtiers.pip.locker import lock
from envtiers.settings import Project
from tests.image.support import Infra, docker, layers
from tests.support import run_cli

pytestmark = pytest.mark.docker


def registry_digest_of(reference: str, infra: Infra, tmp_path: Path) -> str:
    """The registry's digest for `reference`, asked with our own login (not envtiers')."""
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    env = {"DOCKER_CONFIG": str(config)}
    import os
    import subprocess

    full = {**os.environ, **env}
    subprocess.run(
        ["docker", "login", "-u", infra.user, "--password-stdin", infra.registry],
        input=infra.password,
        text=True,
        capture_output=True,
        env=full,
        check=True,
    )
    done = subprocess.run(
        ["docker", "manifest", "inspect", "-v", "--insecure", reference],
        capture_output=True,
        text=True,
        env=full,
        check=True,
    )
    return str(json.loads(done.stdout)["Descriptor"]["digest"])


def test_build_pushes_records_the_digest_and_skips_when_the_registry_has_it(
    image_project: Project, registry_login: Infra, tmp_path: Path
) -> None:
    lines: list[str] = []
    first = build(image_project, report=lines.append)
    assert first.built
    assert any(line.startswith("Step ") for line in lines), "the build output is streamed"
    assert any("Pushed" in line or "digest: sha256:" in line for line in lines), "the push output is streamed"

    record = read_record(image_project)
    assert record == first.record
    assert record.tag == first.spec.tag and len(record.tag) == 24
    assert record.repository == first.spec.image_name
    assert record.digest == registry_digest_of(f"{record.repository}:{record.tag}", registry_login, tmp_path)
    assert record.lock_hash == first.spec.lock_hash
    assert record.base_digest == registry_login.base_image.split("@")[1]
    raw = json.loads(record.path.read_text())
    assert raw["format-version"] == 1 and raw["dockerfile-hash"].startswith("sha256:")
    assert check_project(image_project).problems == ()

    # Same content: the registry has the tag, nothing is built, the record is unchanged, fast.
    docker("image", "rm", f"{record.repository}:{record.tag}")  # not even the local copy is needed
    before = record.path.stat().st_mtime_ns
    lines.clear()
    started = time.monotonic()
    again = build(image_project, report=lines.append)
    elapsed = time.monotonic() - started
    assert not again.built
    assert again.record == record
    assert record.path.stat().st_mtime_ns == before
    assert not any(line.startswith("Step ") for line in lines)
    assert elapsed < 3, f"make image with the tag present took {elapsed:.1f}s"
    assert docker("image", "inspect", f"{record.repository}:{record.tag}", check=False).returncode != 0


def test_a_code_only_change_reuses_the_dependency_layers(image_project: Project) -> None:
    first = build(image_project)
    assert first.record is not None
    (image_project.root / "detector" / "__init__.py").write_text("CODE_VERSION = 2\n")
    shutil.rmtree(image_project.root / WHEELHOUSE)  # not needed: the environment image is in the registry
    lines: list[str] = []
    second = build(image_project, report=lines.append)
    assert second.built and second.record is not None
    assert any("already has the environment" in line for line in lines)
    assert not any(line.startswith(("wheelhouse:", "building the environment")) for line in lines)
    assert not (image_project.root / WHEELHOUSE).exists()
    # The push uploads the code's layer alone: every other layer is already in the registry.
    pushed = [line for line in lines if line.endswith(": Pushed")]
    assert len(pushed) == 1, pushed
    assert second.spec.tag != first.spec.tag  # the code is part of the content
    assert second.record.lock_hash == first.record.lock_hash

    old, new = layers(first.spec.reference), layers(second.spec.reference)
    assert len(old) == len(new)
    # Everything below the code layer (base, user, env, marker, entrypoint) is the same layer.
    assert old[:-1] == new[:-1]
    assert old[-1] != new[-1]


def test_a_tampered_wheel_in_the_wheelhouse_fails_the_build(image_project: Project) -> None:
    spec = load_spec(image_project)
    prepare_env_context(spec)
    wheel = next((image_project.root / WHEELHOUSE).glob("purepkg-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with (
        session(registry_host=spec.registry_host, report=lambda line: None) as runner,
        pytest.raises(ImageBuildError) as caught,
    ):
        build_env(runner, spec)  # pip in the image checks the lock's hashes, whatever the host did
    assert "does not match the lock's hash" in caught.value.headline
    assert "delete build/image/wheelhouse" in (caught.value.fix or "")
    assert docker("image", "inspect", spec.env_reference, check=False).returncode != 0
    assert not (image_project.root / "lockfiles" / "image.json").exists()
    # `make image` fetches the wheelhouse again first: the tampered file is replaced, not used.
    result = build(image_project)
    assert result.built and result.record is not None
    assert not wheel.read_bytes().endswith(b"tampered")


def test_check_fails_after_a_lock_change_until_make_image(image_project: Project) -> None:
    build(image_project)
    (image_project.envs_dir / "requirements.in").write_text("purepkg==1.0\nplatpkg\n")
    lock(image_project)
    report = check_project(image_project)
    assert len(report.problems) == 1
    assert "image is stale" in report.problems[0].message
    assert "make image" in report.problems[0].fix
    done = run_cli(image_project.root, "check")
    assert done.returncode == 1
    assert "image is stale" in done.stdout and "run `make image`" in done.stdout

    build(image_project)
    assert check_project(image_project).problems == ()
    assert run_cli(image_project.root, "check").returncode == 0


def test_cli_build_with_wrong_credentials_is_one_line_and_writes_nothing(
    image_project: Project, registry_login: Infra
) -> None:
    done = run_cli(
        image_project.root,
        "image",
        "build",
        env={"ENVTIERS_REGISTRY_USER": registry_login.user, "ENVTIERS_REGISTRY_PASSWORD": "wrong-password"},
    )
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr
    assert "fix: set ENVTIERS_REGISTRY_USER and ENVTIERS_REGISTRY_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr
    assert "wrong-password" not in done.stderr + done.stdout
    assert not (image_project.root / "lockfiles" / "image.json").exists()


def test_cli_refuses_a_base_not_pinned_by_digest(image_project: Project) -> None:
    done = run_cli(image_project.root, "image", "build", "--base-image", "python:3.11-slim")
    assert done.returncode == 2
    assert "is not pinned by digest" in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_inspect_reports_the_tag_and_the_registry_digest(image_project: Project) -> None:
    result = build(image_project)
    done = run_cli(image_project.root, "image", "inspect")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["tag"] == result.spec.tag
    assert result.record is not None and info["registry-digest"] == result.record.digest
    assert info["record-current"] is True


def test_cli_unreachable_registry_is_one_line_with_the_fix(image_project: Project) -> None:
    done = run_cli(image_project.root, "image", "build", env={"REGISTRY": "127.0.0.1:9/nowhere"})
    assert done.returncode == 1
    assert "the registry cannot be reached" in done.stderr
    assert "fix: check the network and the registry name" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (image_project.root / "lockfiles" / "image.json").exists()
