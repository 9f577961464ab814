"""`--environment=envtiers-<tier>` on a tiny flow and a tiny lock (the session's local index):
each task runs on the interpreter of the env built from the lock, and a second run builds nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from envtiers.pip.environment import env_key, read_locks
from envtiers.settings import Project
from tests.flows.support import assert_ran_in, client, run_flow, run_id_of, tiny_artifacts, write_tiny_flow
from tests.support import run_cli, snapshot


def assert_refused_before_any_step(done: subprocess.CompletedProcess[str], *messages: str) -> None:
    """A user mistake: non-zero exit, the messages (with the fix), no traceback, no task started."""
    assert done.returncode != 0
    for message in messages:
        assert message in done.stdout
    assert "Traceback" not in done.stdout
    assert "Task is starting" not in done.stdout


def test_tiny_flow_runs_in_the_env_built_from_the_pip_lock(flow_project: Project, tmp_path: Path) -> None:
    flow = write_tiny_flow(flow_project.root)
    first = run_flow(flow, ["--environment=envtiers-pip", "run"], cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "envtiers: built the pip environment" in first.stdout

    key = env_key(flow_project, read_locks(flow_project))
    envs = sorted((flow_project.cache_dir / "envs").iterdir())
    assert len(envs) == 1
    artifacts = tiny_artifacts(tmp_path, run_id_of(first.stdout))
    for step in ("start", "end"):
        assert_ran_in(artifacts[step], tier="pip", prefix=envs[0], key=key)
    # The locked purepkg (2.0, the newest the index serves), and nothing of the launcher's .venv.
    assert artifacts["start"]["purepkg"] == "2.0"
    assert artifacts["start"]["sees_pytest"] is False

    before = snapshot(envs[0])
    second = run_flow(flow, ["--environment=envtiers-pip", "run"], cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "envtiers: reusing the pip environment" in second.stdout
    assert sorted((flow_project.cache_dir / "envs").iterdir()) == envs
    assert snapshot(envs[0]) == before  # nothing rebuilt, nothing touched
    again = tiny_artifacts(tmp_path, run_id_of(second.stdout))
    assert_ran_in(again["start"], tier="pip", prefix=envs[0], key=key)


def test_local_environment_runs_in_the_launching_interpreter(flow_project: Project, tmp_path: Path) -> None:
    """The contrast: stock --environment=local leaves the step in the launcher (no isolation)."""
    flow = write_tiny_flow(flow_project.root)
    (flow_project.root / "flows" / "purepkg").mkdir()  # satisfy `import purepkg` from the flow's folder
    (flow_project.root / "flows" / "purepkg" / "__init__.py").write_text('__version__ = "local"\n')
    done = run_flow(flow, ["--environment=local", "run"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    result = client(
        f"""
        run = Run("TinyFlow/{run_id_of(done.stdout)}")
        result = [run["start"].task.data.sees_pytest, "envtiers_tier" in run["start"].task]
        """,
        cwd=tmp_path,
    )
    assert result == [True, False]


def test_a_broken_lock_stops_the_run_before_any_step(flow_project: Project, tmp_path: Path) -> None:
    flow = write_tiny_flow(flow_project.root)
    lock = flow_project.pip_lock_dir / "linux-64.txt"
    lock.write_text(lock.read_text().replace("purepkg==2.0", "purepkg==1.0"))
    done = run_flow(flow, ["--environment=envtiers-pip", "run"], cwd=tmp_path)
    assert_refused_before_any_step(done, "the file was edited by hand or truncated", "make lock")
    assert not (flow_project.cache_dir / "envs").exists() or not any((flow_project.cache_dir / "envs").iterdir())


def test_a_lock_without_metaflow_is_refused_with_the_fix(locked_project: Project, tmp_path: Path) -> None:
    """The steps run the env's own Metaflow: a lock without it could never run a step."""
    flow = write_tiny_flow(locked_project.root)
    done = run_flow(flow, ["--environment=envtiers-pip", "run"], cwd=tmp_path)
    assert_refused_before_any_step(
        done,
        "has no metaflow, so no step can run in it",
        "add metaflow (the version you launch with) to envs/requirements.in",
    )


def test_export_for_stock_metaflow_pypi_equals_the_lock(locked_project: Project) -> None:
    done = run_cli(locked_project.root, "export", "--tier", "pip", "--format", "metaflow", "--platform", "linux-64")
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    (lock,) = read_locks(locked_project, platform="linux-64")
    assert exported == {"python": "3.11", "packages": {pin.name: pin.version for pin in lock.pins}}
    assert exported["packages"] == {"purepkg": "2.0", "platpkg": "1.0", "markerpkg": "1.0", "linuxdep": "1.0"}

    mac = json.loads(run_cli(locked_project.root, "export", "--platform", "osx-arm64").stdout)
    assert "macdep" in mac["packages"] and "linuxdep" not in mac["packages"]


def test_export_rejects_what_it_cannot_export(locked_project: Project) -> None:
    done = run_cli(locked_project.root, "export", "--platform", "win-64")
    assert done.returncode == 2
    assert "win-64 is not a platform of this project" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stale_pip_lock_stops_the_run_before_any_task(flow_project: Project, tmp_path: Path) -> None:
    """The spec changed after locking: Metaflow's validate_environment refuses the run (no env is
    built, no task starts), with `make lock` as the fix."""
    flow = write_tiny_flow(flow_project.root)
    spec = flow_project.pip.spec
    spec.write_text(spec.read_text() + "platpkg\n")

    done = run_flow(flow, ["--environment=envtiers-pip", "run"], cwd=tmp_path)

    assert_refused_before_any_step(done, "stale: locked from different inputs", "make lock")
    assert not (flow_project.cache_dir / "envs").exists() or not any((flow_project.cache_dir / "envs").iterdir())
