"""The detector flow end to end on AWS Batch (the local AWS) in the image tier: every step a job
running the detector image by digest, the data read from S3, the artifacts and the card's
provenance read back through the Client API from the S3 datastore.

Needs the ~7 GB detector image: built by CI (tests/image/test_detector_image.py), or given as
ENVTIERS_TEST_DETECTOR_IMAGE together with its record (the build's lockfiles/image.json).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.support import client, copy_project, flow_env, run_flow, run_id_of
from tests.image.support import infra_from_env
from tests.image.test_detector_image import detector_image_project, detector_image_reference
from tests.remote.support import LocalAws

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STEPS = ("start", "augment_data_train_model", "evaluate_model", "deploy", "end")


def test_detector_flow_runs_on_batch_in_the_image_with_data_on_s3(
    local_aws: LocalAws, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    reference = detector_image_reference(request)
    record = detector_image_project() / "lockfiles" / "image.json"
    recorded = json.loads(record.read_text()) if record.is_file() else {}
    if f"{recorded.get('repository')}@{recorded.get('digest')}" != reference:
        pytest.skip(f"no record of the detector image {reference} at {record}")
    project = copy_project(tmp_path / "project")
    shutil.copy2(record, project / "lockfiles" / "image.json")
    shutil.copytree(detector_image_project() / "docker", project / "docker", dirs_exist_ok=True)
    infra = infra_from_env()
    env = {
        **local_aws.env(),
        "ENVTIERS_REGISTRY_USER": infra.user,
        "ENVTIERS_REGISTRY_PASSWORD": infra.password,
    }
    # The data tools run outside the copy: from inside it, Metaflow would find this checkout's
    # extension (installed in the venv) and the copy's, and refuse the two.
    data = tmp_path / "sample"
    subprocess.run([sys.executable, "-m", "detector", "sample", "--out", str(data)], check=True, cwd=tmp_path)
    url = env["METAFLOW_DATATOOLS_S3ROOT"] + "/plantdoc-sample/"
    upload = subprocess.run(
        [sys.executable, "-m", "detector", "upload", str(data), url],
        cwd=tmp_path,
        env=flow_env(env),
        capture_output=True,
        text=True,
    )
    assert upload.returncode == 0, upload.stderr

    args = ["--model-config", "test", "--epochs", "1", "--wandb-mode", "offline", "--data", url]
    done = run_flow(
        project / "flows" / "detector_flow.py",
        ["--environment=envtiers-image", "run", "--with", "batch", *args],
        cwd=project,
        env=env,
        timeout=2400,
    )
    assert done.returncode == 0, done.stdout[-6000:]
    assert "data: downloading" in done.stdout
    run_id = run_id_of(done.stdout)
    result = client(
        f"""
        run = Run("DetectorFlow/{run_id}")
        evaluation = run["evaluate_model"].task
        result = {{"ok": run.successful, "ap50": evaluation.data.eval_result["ap50"],
                   "runtime": {{s.id: s.task.data.envtiers_runtime for s in run}},
                   "provenance": evaluation.data.envtiers_provenance,
                   "model": [run["deploy"].task.data.model_location, run["deploy"].task.data.model_sha256]}}
        """,
        cwd=tmp_path,  # outside the copy (see above); its local metadata is named instead
        env={**env, "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(project)},
    )
    assert result["ok"] is True
    assert 0.0 <= result["ap50"] <= 1.0
    for step in STEPS:
        info = result["runtime"][step]
        assert info["scheduler"] == "batch" and info["job_id"], (step, info)
        assert info["image"] == reference
    # What the evaluation card's provenance table shows (tests/flows/test_detector_flow.py reads the
    # card itself). Not the card here: with Metaflow's local metadata, a card rendered inside a
    # Batch container cannot look its task up (the task's metadata reaches the launcher only when
    # it ends), so Metaflow reports "Card render failed"; a metadata service has no such gap.
    assert set(result["provenance"]) >= {"start", "augment_data_train_model", "evaluate_model"}
    assert {info["image"] for info in result["provenance"].values()} == {reference}
    # The deploy step's model.tar.gz outlives its container: in S3, under the run's prefix.
    model_url, model_sha256 = result["model"]
    assert model_url == f"{env['METAFLOW_DATATOOLS_S3ROOT']}/DetectorFlow/{run_id}/model.tar.gz"
    bucket, key = model_url.removeprefix("s3://").split("/", 1)
    body = local_aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == model_sha256
