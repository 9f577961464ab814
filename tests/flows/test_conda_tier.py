"""`--environment=envtiers-conda` on a tiny flow: each task runs on the interpreter of the conda env
built from conda-lock.yml (a relocated CPython from the session's conda channel), whose pip entries
(Metaflow included) come from the pip lock against the flow index."""

from __future__ import annotations

from pathlib import Path

from envtiers.conda.environment import env_key, read_lock
from envtiers.conda.locker import lock as lock_conda
from envtiers.settings import Project, load_project
from tests.conda.support import add_conda_tier
from tests.flows.support import assert_ran_in, run_flow, run_id_of, tiny_artifacts, write_tiny_flow
from tests.support import snapshot

ENVIRONMENT = "channels:\n  - conda-forge\ndependencies:\n  - python 3.11.*\n"


def conda_flow_project(flow_project: Project, conda_channel: Path) -> tuple[Project, Path]:
    add_conda_tier(flow_project.root, mirror=conda_channel.as_uri(), environment=ENVIRONMENT)
    project = load_project(flow_project.root, cache_dir=flow_project.cache_dir)
    lock_conda(project)
    return project, write_tiny_flow(project.root)


def test_tiny_flow_runs_in_the_conda_env(flow_project: Project, conda_channel: Path, tmp_path: Path) -> None:
    project, flow = conda_flow_project(flow_project, conda_channel)
    first = run_flow(flow, ["--environment=envtiers-conda", "run"], cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "envtiers: built the conda environment" in first.stdout

    platform, conda_lock = read_lock(project)
    key = env_key(conda_lock, platform)
    envs = sorted((project.cache_dir / "envs").iterdir())
    assert [p.name[:6] for p in envs] == ["conda-"]
    artifacts = tiny_artifacts(tmp_path, run_id_of(first.stdout))
    for step in ("start", "end"):
        assert_ran_in(artifacts[step], tier="conda", prefix=envs[0], key=key)
    assert artifacts["start"]["purepkg"] == "2.0"
    assert artifacts["start"]["sees_pytest"] is False
    # The interpreter is the conda package's (a real file in the env), not a venv link to the host's.
    python = Path(artifacts["start"]["envtiers_python"])
    assert not (envs[0] / "pyvenv.cfg").exists()
    assert python.resolve().is_relative_to(envs[0])

    before = snapshot(envs[0])
    second = run_flow(flow, ["--environment=envtiers-conda", "run"], cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "envtiers: reusing the conda environment" in second.stdout
    assert snapshot(envs[0]) == before


def test_a_missing_conda_lock_stops_the_run_before_any_step(flow_project: Project, tmp_path: Path) -> None:
    flow = write_tiny_flow(flow_project.root)
    done = run_flow(flow, ["--environment=envtiers-conda", "run"], cwd=tmp_path)
    assert done.returncode != 0
    assert "lockfiles/conda-lock.yml is missing" in done.stdout
    assert "fix: run `make lock`" in done.stdout
    assert "Traceback" not in done.stdout
    assert "Task is starting" not in done.stdout
