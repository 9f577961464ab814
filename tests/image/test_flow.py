"""A tiny flow with `--environment=envtiers-image`: each local task runs inside the recorded image
(`docker run`, same paths, the caller's uid), so its steps report the container's interpreter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envtiers.image.builder import build
from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.flows.support import run_flow, run_id_of, tiny_artifacts, write_flow_project, write_tiny_flow
from tests.image.support import Infra, add_image_files, docker, remove_images
from tests.support import PackageIndex

pytestmark = pytest.mark.docker


@pytest.fixture
def flow_image_project(tmp_path: Path, flow_index: PackageIndex, registry_login: Infra) -> Iterator[Project]:
    root = write_flow_project(tmp_path / "project", index_url=flow_index.url)
    namespace = registry_login.namespace()
    add_image_files(root, registry=namespace, base_image=registry_login.base_image)
    write_tiny_flow(root)
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)
    yield project
    remove_images([namespace])


def test_tiny_flow_steps_run_inside_the_recorded_image(flow_image_project: Project, tmp_path: Path) -> None:
    record = build(flow_image_project).record
    assert record is not None
    # Not on this machine: the launch pulls it by digest, logged in from the environment.
    docker("rmi", f"{record.repository}:{record.tag}")
    assert docker("image", "inspect", record.reference, check=False).returncode != 0
    done = run_flow(
        flow_image_project.root / "flows" / "tiny_flow.py", ["--environment=envtiers-image", "run"], cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert docker("image", "inspect", record.reference, check=False).returncode == 0
    assert "envtiers: pulled the image environment" in done.stdout
    run_id = run_id_of(done.stdout)
    result = tiny_artifacts(tmp_path, run_id)
    for step in ("start", "end"):
        assert result[step]["envtiers_tier"] == "image"
        assert result[step]["envtiers_python"] == "/opt/envtiers/env/bin/python"
        assert result[step]["envtiers_prefix"] == "/opt/envtiers/env"
        assert result[step]["envtiers_lock_hash"] == record.lock_hash
    assert result["start"]["purepkg"] == "2.0"
    assert result["start"]["sees_pytest"] is False
    # The task wrote the datastore as the caller: nothing under it belongs to the image's user.
    owners = {path.stat().st_uid for path in (tmp_path / ".metaflow").rglob("*")}
    assert owners == {os.getuid()}


def test_a_stale_record_stops_the_run_before_any_step(flow_image_project: Project, tmp_path: Path) -> None:
    build(flow_image_project)
    (flow_image_project.envs_dir / "requirements.in").write_text("purepkg==1.0\nmetaflow\n")
    lock(flow_image_project)
    done = run_flow(
        flow_image_project.root / "flows" / "tiny_flow.py", ["--environment=envtiers-image", "run"], cwd=tmp_path
    )
    assert done.returncode != 0
    assert "image is stale" in done.stdout and "make image" in done.stdout
    assert "Traceback" not in done.stdout
    assert "Task is starting" not in done.stdout
