"""A 3-way foreach on AWS Batch (the local AWS: each job a real container) in the pip tier, with
the environment shipped through the datastore: the candidates run at the same time, each in its
own container, the join keeps the best; the locked files sit in the datastore once under their
sha256, a second run uploads nothing, and with the package index gone the containers still build
their env (from the datastore alone)."""

from __future__ import annotations

import hashlib
import shutil
import socket
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.flows.support import client, run_flow, run_id_of
from tests.remote.support import REMOTE_SPEC, LocalAws
from tests.support import PackageIndex, write_project

pytestmark = pytest.mark.docker

SWEEP_FLOW = textwrap.dedent(
    '''
    """Three candidates trained (here: scored) on Batch at once; the join keeps the best."""
    import time

    from metaflow import FlowSpec, batch, step


    class SweepFlow(FlowSpec):
        @step
        def start(self):
            self.candidates = [{"label": "a", "score": 0.2}, {"label": "b", "score": 0.7}, {"label": "c", "score": 0.5}]
            self.next(self.train, foreach="candidates")

        @batch(cpu=1, memory=512)
        @step
        def train(self):
            import purepkg

            self.started_at = time.time()
            time.sleep(4)
            self.label, self.score = self.input["label"], self.input["score"]
            self.purepkg_version = purepkg.__version__
            self.finished_at = time.time()
            self.next(self.join)

        @step
        def join(self, inputs):
            best = inputs[0]
            for candidate in inputs[1:]:
                if candidate.score > best.score:  # ties: the first
                    best = candidate
            self.best = best.label
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        SweepFlow()
    '''
)


@dataclass
class SweepProject:
    project: Project
    index: PackageIndex
    flow: Path


@pytest.fixture
def sweep_project(tmp_path: Path, remote_index: PackageIndex) -> Iterator[SweepProject]:
    """The remote tiny project, locked against an index of its own (this test stops it)."""
    directory = tmp_path / "index"
    shutil.copytree(remote_index.directory, directory)
    index = PackageIndex(directory).start()
    root = write_project(
        tmp_path / "project",
        requirements=REMOTE_SPEC,
        index_url=index.url,
        platforms=("linux-64",),
        tools="uv\npackaging\n",
    )
    flow = root / "flows" / "sweep_flow.py"
    flow.parent.mkdir()
    flow.write_text(SWEEP_FLOW)
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)
    yield SweepProject(project, index, flow)
    index.stop()


def sweep_artifacts(cwd: Path, run_id: str, env: dict[str, str]) -> dict[str, Any]:
    return client(
        f"""
        run = Run("SweepFlow/{run_id}")
        result = dict(
            best=run["join"].task.data.best,
            trains=[dict(label=t.data.label, score=t.data.score,
                         runtime=t.data.envtiers_runtime,
                         purepkg=t.data.purepkg_version) for t in run["train"]],
        )
        """,
        cwd=cwd,
        env=env,
    )


def test_a_three_way_sweep_runs_concurrently_on_batch_from_the_shipped_env(
    local_aws: LocalAws, sweep_project: SweepProject
) -> None:
    env = local_aws.env()
    root = sweep_project.project.root
    args = ["--environment=envtiers-pip", "run", "--max-workers", "3"]
    first = run_flow(sweep_project.flow, args, cwd=root, env=env)
    assert first.returncode == 0, first.stdout[-5000:]
    data = sweep_artifacts(root, run_id_of(first.stdout), env)
    trains = data["trains"]
    assert data["best"] == "b" == max(trains, key=lambda t: t["score"])["label"]
    # Each candidate in a container of its own, started by the Batch API.
    assert len({t["runtime"]["job_id"] for t in trains}) == len({t["runtime"]["hostname"] for t in trains}) == 3
    for train in trains:
        assert train["runtime"]["scheduler"] == "batch"
        assert train["runtime"]["hostname"] != socket.gethostname()
        assert train["runtime"]["python"].endswith(".envtiers/env/bin/python")
        assert train["purepkg"] == "2.0"
    # ... at the same time: every pair of the jobs' run intervals (container start to stop, as
    # Batch records them) overlaps.
    jobs = local_aws.client("batch").describe_jobs(jobs=[t["runtime"]["job_id"] for t in trains])["jobs"]
    assert len(jobs) == 3
    for a in jobs:
        for b in jobs:
            assert a["startedAt"] < b["stoppedAt"], (a["jobId"], b["jobId"])
    # The datastore holds each file the linux-64 lock and the tools lock install, once, by sha256.
    bucket, _, prefix = env["METAFLOW_DATASTORE_SYSROOT_S3"].removeprefix("s3://").partition("/")
    s3 = local_aws.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/envtiers/files/sha256/")["Contents"]
    shas = [item["Key"].split("/")[-2] for item in listed]
    assert len(shas) == len(set(shas)) >= 4  # purepkg, metaflow and its dependencies, boto3, uv, packaging
    for item in listed:
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == item["Key"].split("/")[-2]
        assert body == (sweep_project.index.directory / item["Key"].rsplit("/", 1)[1]).read_bytes()
    assert f"{len(shas)} of {len(shas)} locked files uploaded" in first.stdout
    for train in trains:
        logs = local_aws.job_logs(train["runtime"]["job_id"])
        assert f"envtiers: fetched {len(shas)}/{len(shas)} files" in logs, logs[-3000:]
        assert sweep_project.index.url not in logs

    # A second run: nothing uploaded, and no package index at all for the containers.
    sweep_project.index.stop()
    second = run_flow(sweep_project.flow, args, cwd=root, env=env)
    assert second.returncode == 0, second.stdout[-5000:]
    assert f"environment's {len(shas)} locked files are already in" in second.stdout
    again = sweep_artifacts(root, run_id_of(second.stdout), env)
    assert again["best"] == "b"
    assert {t["runtime"]["job_id"] for t in again["trains"]}.isdisjoint({t["runtime"]["job_id"] for t in trains})
    after = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/envtiers/")["Contents"]
    assert {i["Key"]: i["LastModified"] for i in after if "/files/" in i["Key"]} == {
        i["Key"]: i["LastModified"] for i in listed
    }
