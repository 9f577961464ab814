"""`python -m detector train` then `evaluate`, end to end on the sample, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def detector_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "detector", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_train_then_evaluate_writes_the_run_and_per_class_ap(sample_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trained = detector_cli(
        "train", "--data", sample_root, "--run-dir", run_dir, "--config", "test", "--epochs", "1", cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["config"] == "test" and record["epochs"] == 1
    assert (run_dir / "checkpoints" / record["weights"]).is_file()
    names = json.loads((run_dir / "class_map.json").read_text())["classes"]
    assert len(names) == 3
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B should log offline under the run"

    evaluated = detector_cli("evaluate", "--run-dir", run_dir, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads((run_dir / "eval" / "eval.json").read_text())
    assert set(result["ap_per_class"]) == set(names)
    assert {"ap", "ap50", "ap75"} <= set(result)
    assert (run_dir / "eval" / "pr_curve.png").stat().st_size > 0
    assert "AP50" in evaluated.stdout
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2, "evaluation logs its own offline W&B run"


def test_evaluate_on_a_folder_that_is_not_a_run_is_one_line(tmp_path: Path) -> None:
    result = detector_cli("evaluate", "--run-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is not a training run" in result.stderr and "fix:" in result.stderr


def test_unknown_config_is_one_line(sample_root: Path, tmp_path: Path) -> None:
    result = detector_cli("train", "--data", sample_root, "--run-dir", tmp_path / "r", "--config", "huge", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown model configuration 'huge'" in result.stderr
