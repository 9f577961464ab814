"""TinyFlow on AWS Batch (the local AWS: each job a real container) in each tier: every task's
`envtiers_runtime` says batch, names its job and a container hostname, and the env was built
inside the container from the lock shipped in the code package, not on this machine."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from envtiers.conda.environment import env_key, read_lock
from envtiers.conda.locker import lock as lock_conda
from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.conda.channel import ChannelServer
from tests.flows.support import client, run_flow, run_id_of, write_tiny_flow
from tests.remote.support import CONDA_TOOLS, LocalAws, add_remote_conda_tier, write_remote_project
from tests.support import PackageIndex

CONDA_ENVIRONMENT = "channels:\n  - conda-forge\ndependencies:\n  - python 3.11.*\n"

pytestmark = pytest.mark.docker


def runtime_artifacts(cwd: Path, run_id: str, env: dict[str, str]) -> dict[str, Any]:
    return client(
        f"""
        run = Run("TinyFlow/{run_id}")
        result = {{step.id: step.task.data.envtiers_runtime for step in run}}
        result["_purepkg"] = run["start"].task.data.purepkg_version
        """,
        cwd=cwd,
        env=env,
    )


def assert_no_secret(local_aws: LocalAws, *texts: str) -> None:
    definitions = json.dumps(local_aws.job_definitions())
    for value in local_aws.secret_values:
        assert value not in definitions
        for text in texts:
            assert value not in text


def test_pip_tier_runs_every_step_on_batch_in_the_env_built_from_the_lock(
    local_aws: LocalAws, remote_project: Project, tmp_path: Path
) -> None:
    env = local_aws.env()
    flow = remote_project.root / "flows" / "tiny_flow.py"
    done = run_flow(
        flow,
        ["--environment=envtiers-pip", "run", "--with", "batch", "--with", "resources:gpu=1,cpu=2,memory=3000"],
        cwd=remote_project.root,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    run_id = run_id_of(done.stdout)
    runtime = runtime_artifacts(remote_project.root, run_id, env)
    assert runtime.pop("_purepkg") == "2.0"  # what the lock pins
    for step in ("start", "end"):
        info = runtime[step]
        assert info["scheduler"] == "batch", info
        assert info["job_id"]
        assert info["hostname"] != socket.gethostname()
        assert info["tier"] == "pip"
        assert info["python"].endswith(".envtiers/env/bin/python")
        assert info["image"] == env["METAFLOW_BATCH_CONTAINER_IMAGE"]
        assert info["platform"] == "linux-64"
    assert runtime["start"]["job_id"] != runtime["end"]["job_id"]
    jobs = local_aws.client("batch").describe_jobs(jobs=[runtime["start"]["job_id"]])["jobs"]
    assert jobs[0]["status"] == "SUCCEEDED"
    # The env was built in the containers: this machine's envtiers cache holds none.
    assert not list((tmp_path / "cache").glob("**/.envtiers-complete.json"))
    logs = "\n".join(local_aws.job_logs(runtime[step]["job_id"]) for step in ("start", "end"))
    assert "building the pip environment" in logs
    assert_no_secret(local_aws, done.stdout, logs)
    # @resources reach the job Batch runs (Metaflow sends them as SubmitJob overrides of its job
    # definition). The GPU is recorded, not given: this machine has none.
    job = local_aws.client("batch").describe_jobs(jobs=[runtime["start"]["job_id"]])["jobs"][0]
    requirements = {r["type"]: r["value"] for r in job["container"]["resourceRequirements"]}
    assert requirements == {"GPU": "1", "VCPU": "2", "MEMORY": "3000"}


def test_conda_tier_runs_on_batch_in_the_env_built_from_the_conda_lock(
    local_aws: LocalAws, remote_index: PackageIndex, conda_server: ChannelServer, tmp_path: Path
) -> None:
    # The tools the task bootstraps for the conda tier: py-rattler (installs the conda lock) too.
    root = write_remote_project(tmp_path / "project", index_url=remote_index.url, tools=CONDA_TOOLS)
    # The channel over http: the job containers share the host network, not its files.
    add_remote_conda_tier(root, mirror=conda_server.url, environment=CONDA_ENVIRONMENT)
    write_tiny_flow(root)
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)
    lock_conda(project)
    env = local_aws.env()
    done = run_flow(
        root / "flows" / "tiny_flow.py", ["--environment=envtiers-conda", "run", "--with", "batch"], cwd=root, env=env
    )
    assert done.returncode == 0, done.stdout[-4000:]
    platform, conda_lock = read_lock(project)
    runtime = runtime_artifacts(root, run_id_of(done.stdout), env)
    assert runtime.pop("_purepkg") == "2.0"
    for info in runtime.values():
        assert info["scheduler"] == "batch" and info["job_id"]
        assert info["tier"] == "conda"
        assert info["lock_hash"] == env_key(conda_lock, platform)
        assert info["python"].endswith(".envtiers/env/bin/python")
        assert info["hostname"] != socket.gethostname()
    assert not list((tmp_path / "cache").glob("**/.envtiers-complete.json"))
    # The conda packages and wheels came from the datastore, where the launcher shipped them.
    assert "locked files uploaded to s3://" in done.stdout
    logs = local_aws.job_logs(runtime["start"]["job_id"])
    assert re.search(r"envtiers: fetched (\d+)/\1 files .* from the datastore", logs), logs[-3000:]
