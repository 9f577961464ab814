"""W&B for real: a training and an evaluation logged offline, read back from the files W&B wrote."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from detector.pipeline import evaluate_run, train_on_folder
from tests.detector.test_train import isolated_wandb  # noqa: F401 (autouse: no key or setting leaks in)
from tests.detector.wandb_files import read_offline_run

EPOCHS = 2


@pytest.mark.slow
def test_offline_run_files_hold_the_loss_per_epoch_the_ap_and_the_plots(sample_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trained = train_on_folder(sample_root, run_dir, config_name="test", epochs=EPOCHS, wandb_mode="offline")
    assert trained.wandb_mode == "offline"
    result = evaluate_run(run_dir, wandb_mode="offline")

    runs = {}
    for folder in sorted((run_dir / "wandb").glob("offline-run-*")):
        run = read_offline_run(folder)
        runs["train" if run.series("epoch/loss") else "evaluate"] = run
    assert set(runs) == {"train", "evaluate"}

    losses = runs["train"].series("epoch/loss")
    assert len(losses) == EPOCHS and all(math.isfinite(v) for v in losses)
    assert losses == pytest.approx(trained.history["loss"], rel=1e-6)
    assert len(runs["train"].series("epoch/val_loss")) == EPOCHS

    evaluation = runs["evaluate"]
    assert evaluation.series("eval/ap") == [pytest.approx(result.ap)]
    assert evaluation.series("eval/ap50") == [pytest.approx(result.ap50)]
    for name, value in result.metrics.ap_per_class.items():
        assert evaluation.series(f"eval/ap/{name}") == [pytest.approx(value)]
    assert len(result.metrics.ap_per_class) == len(trained.class_names) > 1
    # Images are logged as nested values: {"_type": "image-file", "path": ...} under the key.
    assert evaluation.series("eval/pr_curve/_type") == ["image-file"]
    (curve,) = evaluation.series("eval/pr_curve/path")
    assert curve.endswith(".png") and (evaluation.folder / "files" / curve).is_file()
    assert curve in evaluation.files
    assert evaluation.series("eval/samples/count") == [len(result.sample_paths)] and result.sample_paths
    (samples,) = evaluation.series("eval/samples/filenames")
    assert all((evaluation.folder / "files" / name).is_file() for name in samples)
