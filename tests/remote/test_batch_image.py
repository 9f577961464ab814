"""The image tier on AWS Batch (the local AWS): each job runs the recorded image by digest; a
failing remote step shows its job id and log, and `resume` reruns it from the S3 datastore; an
image the registry lost stops the run before any job is submitted."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator

import pytest

from envtiers.image.builder import build
from envtiers.image.record import ImageRecord
from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.flows.support import client, run_flow, run_id_of
from tests.image.support import add_image_files, infra_from_env, remove_images
from tests.remote.support import LocalAws, write_remote_project
from tests.support import PackageIndex

pytestmark = pytest.mark.docker

# Fails in `end` on a fresh run, succeeds when resumed: `current.origin_run_id` is set by resume.
FLAKY_FLOW = textwrap.dedent(
    """
    from metaflow import FlowSpec, current, step


    class FlakyFlow(FlowSpec):
        @step
        def start(self):
            self.value = 41
            self.next(self.end)

        @step
        def end(self):
            if not current.origin_run_id:
                raise RuntimeError("injected failure on a fresh run")
            self.value += 1


    if __name__ == "__main__":
        FlakyFlow()
    """
)


@pytest.fixture(scope="module")
def image_project(
    local_aws: LocalAws, remote_index: PackageIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Project, ImageRecord, dict[str, str]]]:
    """A tiny project whose image (the real Dockerfile over the tiny lock) is built and pushed once
    for the module; yields it, its record and the environment remote runs need."""
    infra = infra_from_env()
    tmp = tmp_path_factory.mktemp("batch-image")
    root = write_remote_project(tmp / "project", index_url=remote_index.url)
    namespace = infra.namespace()
    add_image_files(root, registry=namespace, base_image=infra.base_image)
    (root / "flows").mkdir()
    (root / "flows" / "flaky_flow.py").write_text(FLAKY_FLOW)
    login = {"ENVTIERS_REGISTRY_USER": infra.user, "ENVTIERS_REGISTRY_PASSWORD": infra.password}
    project = load_project(root, cache_dir=tmp / "cache")
    lock(project)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in login.items():
            patch.setenv(name, value)
        record = build(project).record
    assert record is not None
    yield project, record, {**local_aws.env(), **login}
    remove_images([namespace])


def test_a_failing_remote_step_shows_its_job_and_log_then_resume_reruns_it_on_batch(
    local_aws: LocalAws, image_project: tuple[Project, ImageRecord, dict[str, str]]
) -> None:
    project, record, env = image_project
    flow = project.root / "flows" / "flaky_flow.py"
    failed = run_flow(flow, ["--environment=envtiers-image", "run", "--with", "batch"], cwd=project.root, env=env)
    assert failed.returncode != 0
    assert "injected failure on a fresh run" in failed.stdout  # the job's log, streamed back
    run_id = run_id_of(failed.stdout)
    end_job = client(
        f'result = Run("FlakyFlow/{run_id}")["end"].task.metadata_dict.get("aws-batch-job-id")',
        cwd=project.root,
        env=env,
    )
    assert end_job and end_job in failed.stdout  # the Batch job id, next to its log
    end_log = local_aws.job_logs(end_job)
    assert "injected failure" in end_log
    assert "envtiers: building" not in end_log  # the image tier installs nothing in the task

    resumed = run_flow(flow, ["--environment=envtiers-image", "resume", "--with", "batch"], cwd=project.root, env=env)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    new_run = run_id_of(resumed.stdout)
    result = client(
        f"""
        run = Run("FlakyFlow/{new_run}")
        result = {{"value": run.data.value, "runtime": {{s.id: s.task.data.envtiers_runtime for s in run}},
                   "start_origin": run["start"].task.origin_pathspec}}
        """,
        cwd=project.root,
        env=env,
    )
    assert result["value"] == 42
    # start was cloned from the failed run's S3 artifacts, not run again.
    assert result["start_origin"] == f"FlakyFlow/{run_id}/start/1"
    for info in result["runtime"].values():
        assert info["scheduler"] == "batch"
        assert info["image"] == record.reference
        assert info["python"] == "/opt/envtiers/env/bin/python"
        assert info["lock_hash"] == record.lock_hash
        assert info["hostname"] != socket.gethostname()
    assert result["runtime"]["end"]["job_id"] != end_job


def test_an_image_the_registry_lost_stops_the_run_before_any_job(
    local_aws: LocalAws, image_project: tuple[Project, ImageRecord, dict[str, str]]
) -> None:
    """Runs last in this module: it deletes the module's image from the registry."""
    import base64
    import urllib.request

    project, record, env = image_project
    infra = infra_from_env()
    name = record.repository.split("/", 1)[1]
    request = urllib.request.Request(
        f"http://{infra.registry}/v2/{name}/manifests/{record.digest}",
        method="DELETE",
        headers={"Authorization": "Basic " + base64.b64encode(f"{infra.user}:{infra.password}".encode()).decode()},
    )
    assert urllib.request.urlopen(request).status == 202
    batch = local_aws.client("batch")
    queue = env["METAFLOW_BATCH_JOB_QUEUE"]

    def job_count() -> int:
        statuses = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        return sum(len(batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]) for s in statuses)

    before = job_count()
    done = run_flow(
        project.root / "flows" / "flaky_flow.py",
        ["--environment=envtiers-image", "run", "--with", "batch"],
        cwd=project.root,
        env=env,
    )
    assert done.returncode != 0
    assert f"the registry has no image {record.reference}" in done.stdout
    assert "make image" in done.stdout
    assert "Traceback" not in done.stdout
    assert job_count() == before
