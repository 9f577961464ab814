"""The detector flow end to end in the pip tier, on a small generated dataset (the `test` model,
one epoch): every step in the env built from lockfiles/pip/linux-64.txt, artifacts read back with
the Client API, the evaluation card, resume after a failure, and a stale lock stopped in `start`.

Three runs share one training: A runs everything; B resumes A from evaluate_model with a failure
injected there; C resumes B once the failure is gone. They are the session's `detector_flow_runs`
(tests/conftest.py), which tests/detector/app/test_page.py shows in the front end too, so that CI
trains the flow once for both modules rather than twice. The env is built once, into a cache of
those runs' own, from the uv cache `make venv` already filled.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from envtiers.pip.environment import env_key, read_locks
from envtiers.settings import load_project
from tests.flows.support import (
    DETECTOR_RUN_ARGS,
    REPO_ROOT,
    FlowRuns,
    assert_ran_in,
    client,
    copy_project,
    evaluation_card_components,
    run_flow,
    run_id_of,
)

pytestmark = pytest.mark.slow

# The five steps a user saw before the sweep: without --sweep, its foreach joins in evaluate_model.
STEPS = ("start", "augment_data_train_model", "evaluate_model", "deploy", "end")


@pytest.fixture(scope="module")
def runs(detector_flow_runs: FlowRuns) -> FlowRuns:
    return detector_flow_runs


def started(output: str, step: str) -> bool:
    return any(f"/{step}/" in line and line.endswith("Task is starting.") for line in output.splitlines())


def artifacts(runs: FlowRuns, run_id: str) -> dict[str, Any]:
    return client(
        f"""
        run = Run("DetectorFlow/{run_id}")
        proof = ("envtiers_tier", "envtiers_lock_hash", "envtiers_python", "envtiers_prefix")
        result = {{"steps": {{s.id: {{n: s.task[n].data for n in proof}} for s in run}}, "successful": run.successful}}
        start, train = run["start"].task.data, run["augment_data_train_model"].task.data
        evaluation, deploy = run["evaluate_model"].task.data, run["deploy"].task.data
        result.update(
            num_test_images=start.num_test_images,
            lock_status=start.lock_status,
            sample_image=[list(train.sample_image.shape), str(train.sample_image.dtype)],
            sample_png=train.sample_image_png[:8].hex(),
            class_names=list(train.class_names),
            train_seconds=train.train_seconds,
            train_origin=run["augment_data_train_model"].task.origin_pathspec,
            eval_result=evaluation.eval_result,
            y_pred=evaluation.y_pred,
            confidences=evaluation.confidences,
            model_location=deploy.model_location,
            endpoint_url=deploy.endpoint_url,
            smoke_test=deploy.smoke_test,
        )
        """,
        cwd=runs.base,
        env=runs.env,
    )


def expected_env() -> tuple[str, str]:
    project = load_project(REPO_ROOT)
    return env_key(project, read_locks(project)), f"pip-{env_key(project, read_locks(project))[7:23]}"


def test_every_step_runs_in_the_env_built_from_the_pip_lock(runs: FlowRuns) -> None:
    data = artifacts(runs, run_id_of(runs.a.stdout))
    assert data["successful"]
    key, folder = expected_env()
    prefix = runs.base / "cache" / "envs" / folder
    assert set(data["steps"]) == set(STEPS)
    for step in STEPS:
        assert_ran_in(data["steps"][step], tier="pip", prefix=prefix, key=key)
    assert data["lock_status"] == "5 pip lockfile(s) consistent"  # runtime and dev per platform, tools


def test_artifacts_for_debugging_read_back_with_the_client_api(runs: FlowRuns) -> None:
    data = artifacts(runs, run_id_of(runs.a.stdout))
    assert data["sample_image"] == [[128, 128, 3], "uint8"]  # the `test` config's input size
    assert data["sample_png"].startswith("89504e47")
    assert set(data["eval_result"]) >= {"ap", "ap50", "ap75", "ap_per_class", "num_images"}
    assert data["eval_result"]["num_images"] == data["num_test_images"] == len(data["y_pred"])
    assert set(data["eval_result"]["ap_per_class"]) == set(data["class_names"])
    assert data["confidences"] == [score for image in data["y_pred"] for score in image["confidences"]]
    for image in data["y_pred"]:
        assert len(image["boxes"]) == len(image["classes"]) == len(image["confidences"])
        assert set(image["classes"]) <= set(data["class_names"])
    assert data["endpoint_url"].startswith("http://127.0.0.1:")
    assert isinstance(data["smoke_test"]["detections"], int)
    with tarfile.open(data["model_location"]) as archive:
        assert "metadata.json" in archive.getnames()
    # W&B ran offline: its files are under the run, nothing was uploaded.
    run_dir = runs.base / "runs" / "DetectorFlow" / run_id_of(runs.a.stdout)
    assert list(run_dir.glob("**/wandb/offline-run-*"))


def test_the_evaluation_card_shows_the_map_table(runs: FlowRuns) -> None:
    run_id = run_id_of(runs.a.stdout)
    components = evaluation_card_components(run_id, cwd=runs.base, env=runs.env)
    tables = [c for c in components if c["type"] == "table"]
    headings = [c["source"] for c in components if c["type"] == "markdown"]
    assert "## COCO mAP" in headings and "## AP per class" in headings
    assert tables[0]["columns"][:3] == ["mAP@[.5:.95]", "AP50", "AP75"]
    data = artifacts(runs, run_id)
    result = data["eval_result"]
    assert tables[0]["data"][0][3] == result["num_images"]
    assert [row[0] for row in tables[1]["data"]] == data["class_names"]
    images = [c for c in components if c["type"] == "image"]
    assert len(images) >= 2  # the PR plot and at least one sample
    assert all(image["src"].startswith("data:image/png;base64,") for image in images)
    # Provenance: the steps before evaluation, each with where it ran and the lock it ran in.
    assert "## Provenance: the locked environment each step ran in" in headings
    provenance = next(t for t in tables if t["columns"][:2] == ["step", "scheduler"])
    steps = {row[0]: row for row in provenance["data"]}
    assert {"start", "augment_data_train_model"} <= set(steps)
    assert {row[1] for row in steps.values()} == {"local"}
    assert {row[3] for row in steps.values()} == {"pip"}
    assert {row[4] for row in steps.values()} == {data["steps"]["start"]["envtiers_lock_hash"]}


def test_resume_reruns_evaluate_without_retraining(runs: FlowRuns) -> None:
    run_a, run_b = run_id_of(runs.a.stdout), run_id_of(runs.b.stdout)
    assert runs.b.returncode != 0
    assert "failure injected by DETECTOR_FAIL_AT=evaluate_model" in runs.b.stdout
    assert runs.c.returncode == 0, runs.c.stdout[-5000:]
    for output in (runs.b.stdout, runs.c.stdout):
        assert not started(output, "augment_data_train_model")  # cloned, not retrained
    assert started(runs.c.stdout, "evaluate_model") and started(runs.c.stdout, "deploy")
    data = artifacts(runs, run_id_of(runs.c.stdout))
    assert data["successful"]
    assert data["train_origin"] is not None and data["train_origin"].startswith(f"DetectorFlow/{run_b}/")
    assert data["train_seconds"] == artifacts(runs, run_a)["train_seconds"]
    key, folder = expected_env()
    for step in ("evaluate_model", "deploy", "end"):
        assert_ran_in(data["steps"][step], tier="pip", prefix=runs.base / "cache" / "envs" / folder, key=key)


def test_the_app_lists_successful_runs_with_tier_lock_and_ap50(runs: FlowRuns) -> None:
    """What the front end's run picker shows (detector/app/runs.py), from these pip-tier runs."""
    listed = client(
        """
        from detector.app.runs import list_runs
        result = [[s.run_id, s.tier, s.lock_hash, s.ap50, s.model_config, sorted(s.ap_per_class)] for s in list_runs()]
        """,
        cwd=runs.base,
        env=runs.env,
    )
    a, c = run_id_of(runs.a.stdout), run_id_of(runs.c.stdout)
    assert [entry[0] for entry in listed] == [c, a]  # newest first; B failed, so it has no model
    key, _ = expected_env()
    for run_id, tier, lock_hash, ap50, model_config, classes in listed:
        data = artifacts(runs, run_id)
        assert (tier, lock_hash, model_config) == ("pip", key, "test")
        assert ap50 == data["eval_result"]["ap50"] and classes == sorted(data["class_names"])


def test_a_stale_lock_stops_the_run_before_any_task(runs: FlowRuns, tmp_path: Path) -> None:
    """The extension's validate_environment refuses a stale lock before Metaflow starts `start`."""
    project = copy_project(tmp_path / "project")
    with (project / "envs" / "requirements.in").open("a") as spec:
        spec.write("six\n")
    done = run_flow(
        project / "flows" / "detector_flow.py",
        ["--environment=envtiers-pip", "run", "--data", str(runs.sample), *DETECTOR_RUN_ARGS],
        cwd=tmp_path,
        env=runs.env,
    )
    assert done.returncode != 0
    assert "lockfiles/pip/linux-64.txt: stale: locked from different inputs" in done.stdout
    assert "make lock" in done.stdout
    assert "Traceback" not in done.stdout
    assert "Task is starting" not in done.stdout
