"""The detector flow's training sweep, end to end in the pip tier (the `test` model, one epoch):
two candidates trained one after the other, the better one by validation AP50 evaluated and deployed, the
card's sweep section; then the failure paths (cheap: the candidates fail before training).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector.sweep import CandidateResult, choose_best
from tests.flows.support import (
    DETECTOR_FLOW,
    client,
    detector_run_inputs,
    evaluation_card_components,
    run_flow,
    run_id_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]

# One training at a time here (a shared machine): tests/remote/test_batch_sweep.py shows candidates
# running at once, on Batch.
RUN_ARGS = ["--model-config", "test", "--epochs", "1", "--wandb-mode", "offline", "--max-workers", "1"]
SWEEP = '[{"seed": 0}, {"seed": 1}]'


@dataclass(frozen=True)
class SweepRun:
    base: Path
    env: dict[str, str | None]
    sample: Path
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepRun:
    base = tmp_path_factory.mktemp("detector-sweep")
    sample, env = detector_run_inputs(base)
    args = ["--environment=envtiers-pip", "run", "--data", str(sample), *RUN_ARGS, "--sweep", SWEEP]
    done = run_flow(DETECTOR_FLOW, args, cwd=base, env=env, timeout=2400)  # two trainings, one at a time
    assert done.returncode == 0, done.stdout[-5000:]
    return SweepRun(base=base, env=env, sample=sample, done=done)


def sweep_artifacts(sweep: SweepRun) -> dict[str, Any]:
    return client(
        f"""
        import hashlib
        run = Run("DetectorFlow/{run_id_of(sweep.done.stdout)}")
        trains = sorted(run["augment_data_train_model"], key=lambda t: t.data.candidate_result["index"])
        choose, deploy = run["evaluate_model"].task.data, run["deploy"].task.data
        weights = lambda files: {{k: hashlib.sha256(v).hexdigest() for k, v in files.items() if k.startswith("check")}}
        result = dict(
            sweep_results=choose.sweep_results,
            sweep_choice=choose.sweep_choice,
            trains=[dict(pathspec=t.pathspec, weights=weights(t.data.trained_run)) for t in trains],
            deployed_candidate=deploy.deployed_candidate,
            deployed_weights=weights(deploy.trained_run),
            evaluated_weights=weights(choose.trained_run),
        )
        """,
        cwd=sweep.base,
        env=sweep.env,
    )


def test_sweep_results_hold_every_candidate(sweep: SweepRun) -> None:
    data = sweep_artifacts(sweep)
    results = data["sweep_results"]
    assert [r["overrides"] for r in results] == [{"seed": 0}, {"seed": 1}]
    assert [r["pathspec"] for r in results] == [t["pathspec"] for t in data["trains"]]
    for r in results:
        assert r["status"] == "ok" and r["error"] is None
        assert r["train_seconds"] > 0
        assert r["ap50"] is None or 0.0 <= r["ap50"] <= 1.0
        assert r["ap"] is None or 0.0 <= r["ap"] <= 1.0
    # The two seeds trained different weights (else the choice below could not matter).
    assert data["trains"][0]["weights"] != data["trains"][1]["weights"]


def test_the_winner_by_validation_ap50_is_evaluated_and_deployed(sweep: SweepRun) -> None:
    data = sweep_artifacts(sweep)
    best = choose_best([CandidateResult(**r) for r in data["sweep_results"]])
    assert data["sweep_choice"]["index"] == best.index
    assert data["deployed_candidate"] == best.pathspec == data["trains"][best.index]["pathspec"]
    assert data["deployed_weights"] == data["evaluated_weights"] == data["trains"][best.index]["weights"]
    assert f"chose candidate {best.index} ({best.pathspec})" in sweep.done.stdout


def test_the_card_shows_the_sweep_table_and_plot(sweep: SweepRun) -> None:
    run_id = run_id_of(sweep.done.stdout)
    components = evaluation_card_components(run_id, cwd=sweep.base, env=sweep.env)
    headings = [c["source"] for c in components if c["type"] == "markdown"]
    data = sweep_artifacts(sweep)
    chosen = data["sweep_choice"]["index"]
    assert f"## Sweep: 2 candidates, validation AP50 picked candidate {chosen}" in headings
    table = next(c for c in components if c["type"] == "table" and "val AP50" in c["columns"])
    assert [row[1] for row in table["data"]] == ["seed=0", "seed=1"]
    assert [row[6] for row in table["data"]] == [t["pathspec"] for t in data["trains"]]
    assert table["data"][chosen][0] == f"★ {chosen}"
    labels = [c.get("label") for c in components if c["type"] == "image"]
    assert "validation AP50 per candidate" in labels


def test_a_failed_candidate_fails_the_run_with_its_pathspec(sweep: SweepRun) -> None:
    args = ["--environment=envtiers-pip", "run", "--data", str(sweep.sample), *RUN_ARGS, "--sweep", SWEEP]
    done = run_flow(
        DETECTOR_FLOW, args, cwd=sweep.base, env={**sweep.env, "DETECTOR_FAIL_AT": "augment_data_train_model/1"}
    )
    assert done.returncode != 0
    run_id = run_id_of(done.stdout)
    failing = [line for line in done.stdout.splitlines() if "failure injected by DETECTOR_FAIL_AT" in line]
    assert failing and all(f"[{run_id}/augment_data_train_model/" in line for line in failing), done.stdout[-3000:]
    assert "/evaluate_model/" not in done.stdout


def test_with_allow_failures_an_empty_winner_set_is_a_clear_error(sweep: SweepRun) -> None:
    args = ["--environment=envtiers-pip", "run", "--data", str(sweep.sample), *RUN_ARGS, "--sweep", SWEEP]
    args += ["--sweep-allow-failures", "true"]
    done = run_flow(
        DETECTOR_FLOW, args, cwd=sweep.base, env={**sweep.env, "DETECTOR_FAIL_AT": "augment_data_train_model"}
    )
    assert done.returncode != 0
    assert done.stdout.count("--sweep-allow-failures: recorded, skipped by the join") == 2
    assert "all 2 candidate(s) of the sweep failed" in done.stdout
    assert "RuntimeError: failure injected by DETECTOR_FAIL_AT=augment_data_train_model" in done.stdout
    assert "fix: read each candidate's log" in done.stdout
    # The join (evaluate_model) refused before evaluating anything, and nothing was deployed.
    run_id = run_id_of(done.stdout)
    refusal = [line for line in done.stdout.splitlines() if "all 2 candidate(s) of the sweep failed" in line]
    assert refusal and all(f"[{run_id}/evaluate_model/" in line for line in refusal), done.stdout[-3000:]
    assert "AP75" not in done.stdout and f"[{run_id}/deploy/" not in done.stdout
    results = client(
        f'result = [t.data.candidate_result for t in Run("DetectorFlow/{run_id}")["augment_data_train_model"]]',
        cwd=sweep.base,
        env=sweep.env,
    )
    assert sorted(r["status"] for r in results) == ["failed", "failed"]


def test_bad_sweep_json_stops_the_run_in_start(sweep: SweepRun) -> None:
    args = ["--environment=envtiers-pip", "run", "--data", str(sweep.sample), *RUN_ARGS, "--sweep", '[{"depth": 3}]']
    done = run_flow(DETECTOR_FLOW, args, cwd=sweep.base, env=sweep.env)
    assert done.returncode != 0
    assert "--sweep entry 0 sets unknown key(s) depth" in done.stdout
    assert "fix: use only seed, model_config" in done.stdout
    assert "Traceback" not in done.stdout
    assert "/augment_data_train_model/" not in done.stdout
