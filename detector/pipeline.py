"""The stages wired end to end on a dataset folder: what `python -m detector train|evaluate` and
the flow's steps call.

A training run directory holds everything the later stages need:

    RUN_DIR/class_map.json              the class names, in id order
    RUN_DIR/run.json                    configuration name, seed, epochs, data folder
    RUN_DIR/checkpoints/*.weights.h5    best (by validation loss) and last weights
    RUN_DIR/eval/                       eval.json, pr_curve.png, sample_*.png (after evaluate)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import InputError
from detector.quiet import quiet_tensorflow

log = logging.getLogger(__name__)

RUN_FORMAT = 1


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    config_name: str
    weights: Path
    class_names: tuple[str, ...]
    history: dict[str, list[float]]
    seconds: float
    wandb_mode: str
    report: Any = None  # the training split's LoadReport: what was dropped, rescaled, mismatched


def train_on_folder(
    data_dir: Path,
    run_dir: Path,
    *,
    config_name: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    wandb_mode: str = "auto",
    overrides: dict[str, Any] | None = None,
) -> TrainedRun:
    """Train ``config_name`` on the TRAIN split of a PlantDoc-layout folder (validation split by
    file-name hash), saving the class map, run record and checkpoints in ``run_dir``.

    ``overrides`` replaces configuration fields (``image_size``, ``batch_size``); the run record
    keeps them, so evaluation and export rebuild the same model.
    Raises DatasetError for an unusable folder, InputError for an unknown configuration or field.
    """
    from detector.data import build_class_map, load_plantdoc, make_dataset, save_class_map, split_records

    # The data first: a folder that cannot be used is reported in a fraction of a second, before
    # TensorFlow starts (its import alone takes ~10 s; the model configurations import it).
    records, report = load_plantdoc(Path(data_dir), split="train")
    for line in report.details():
        log.warning("%s", line)
    quiet_tensorflow()
    overrides = {k: v for k, v in (overrides or {}).items() if v}
    config = _config(config_name, overrides)
    from detector.train import train

    train_records, val_records = split_records(records, seed=seed)
    class_map = build_class_map(records)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_class_map(class_map, run_dir / "class_map.json")
    result = train(
        config,
        train_ds=make_dataset(train_records, class_map, max_boxes=config.max_boxes),
        val_ds=make_dataset(val_records, class_map, max_boxes=config.max_boxes) if val_records else None,
        class_names=class_map.names,
        run_dir=run_dir,
        epochs=epochs,
        seed=seed,
        wandb_mode=wandb_mode,  # type: ignore[arg-type]
        verbose=2,
    )
    weights = result.best_checkpoint or result.last_checkpoint
    record = {
        "format-version": RUN_FORMAT,
        "config": config.name,
        "overrides": overrides,
        "seed": seed,
        "epochs": result.epochs,
        "data_dir": str(Path(data_dir).resolve()),
        "weights": weights.name,
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return TrainedRun(
        run_dir=run_dir,
        config_name=config.name,
        weights=weights,
        class_names=tuple(class_map.names),
        history=result.history,
        seconds=result.seconds,
        wandb_mode=result.wandb_mode,
        report=report,
    )


def load_run(run_dir: Path) -> tuple[dict[str, Any], Any, Any]:
    """(run record, model config, class map) of a training run. Raises InputError when unusable."""
    from detector.data import load_class_map

    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        raise InputError(
            f"{run_dir} is not a training run (no readable run.json)",
            fix="pass the --run-dir of `python -m detector train`",
        ) from None
    if record.get("format-version") != RUN_FORMAT:
        raise InputError(f"{run_dir}/run.json has format version {record.get('format-version')}, expected {RUN_FORMAT}")
    config = _config(record["config"], record.get("overrides") or {})
    return record, config, load_class_map(run_dir / "class_map.json")


def evaluate_run(
    run_dir: Path, data_dir: Path | None = None, *, out_dir: Path | None = None, wandb_mode: str = "auto"
) -> Any:
    """COCO-evaluate a training run's weights on the TEST split; writes eval/ under the run and
    logs the metrics and plots to W&B (offline under the run unless WANDB_API_KEY is set).

    Returns the EvalResult (also saved as ``eval.json``).
    """
    quiet_tensorflow()
    from detector.data import load_plantdoc, make_dataset
    from detector.evaluate import evaluate, log_to_wandb
    from detector.export import model_from_weights
    from detector.tracking import finish_wandb, start_wandb

    record, config, class_map = load_run(run_dir)
    data_dir = Path(data_dir or record["data_dir"])
    model = model_from_weights(config, class_map, Path(run_dir) / "checkpoints" / record["weights"])
    records, _ = load_plantdoc(data_dir, split="test")
    out_dir = Path(out_dir or Path(run_dir) / "eval")
    result = evaluate(
        model,
        make_dataset(records, class_map, max_boxes=config.max_boxes),
        image_size=config.image_size,
        class_names=class_map.names,
        out_dir=out_dir,
        batch_size=config.batch_size,
    )
    (out_dir / "eval.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    run, _ = start_wandb(
        wandb_mode,  # type: ignore[arg-type]
        run_dir=Path(run_dir),
        name=f"evaluate-{Path(run_dir).name}",
        config={"config": config.name, "data_dir": str(data_dir)},
    )
    try:
        log_to_wandb(result, run=run)
    finally:
        finish_wandb(run)
    return result


def deploy_run(
    run_dir: Path, *, target: str = "local", sagemaker: dict[str, Any] | None = None, keep_serving: bool = False
) -> dict[str, Any]:
    """Export a training run (SavedModel + model.tar.gz under ``run_dir/export``) and deploy it.

    ``local``: start the SageMaker-contract server here, smoke-test ``/invocations`` and stop it
    (unless ``keep_serving``). ``sagemaker``: upload and create/update the endpoint described by
    ``sagemaker`` (endpoint_name, role_arn, bucket, image_uri, optional region). Returns the model
    location, its SHA-256, the endpoint URL and the smoke test's outcome.
    """
    quiet_tensorflow()
    from detector.deploy import SageMakerTarget, deploy_local, deploy_sagemaker
    from detector.export import export_model, model_from_weights, package_model_tar

    record, config, class_map = load_run(run_dir)
    run_dir = Path(run_dir)
    model = model_from_weights(config, class_map, run_dir / "checkpoints" / record["weights"])
    exported = export_model(model, config, class_map, run_dir / "export" / "model", overwrite=True)
    archive = package_model_tar(exported.path, run_dir / "export" / "model.tar.gz")
    if target == "local":
        deployment = deploy_local(model_dir=exported.path, log_path=run_dir / "export" / "serve.log")
        try:
            smoke = deployment.smoke
            result = {
                "model_location": str(archive.path),
                "model_sha256": archive.sha256,
                "endpoint_url": deployment.url,
                "smoke_test": None if smoke is None else {"detections": smoke.detections, "seconds": smoke.seconds},
            }
        finally:
            if not keep_serving:
                deployment.stop()
        return result
    if target == "sagemaker":
        settings = dict(sagemaker or {})
        deployed = deploy_sagemaker(model=archive.path, target=SageMakerTarget(**settings))
        return {
            "model_location": deployed.model_data_url,
            "model_sha256": archive.sha256,
            "endpoint_url": f"https://runtime.sagemaker.{deployed.region}.amazonaws.com/endpoints/"
            f"{deployed.endpoint_name}/invocations",
            "smoke_test": {"action": deployed.action, "seconds": deployed.seconds},
        }
    raise InputError(f"unknown deploy target {target!r}", fix="use local or sagemaker")


def augmented_sample(data_dir: Path, run_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """The first image of the first training batch as the model sees it (flipped, jittered,
    resized), with its boxes and class names: what to look at when training goes wrong."""
    quiet_tensorflow()
    import numpy as np

    from detector.augment import augment_batches
    from detector.data import load_plantdoc, make_dataset

    _, config, class_map = load_run(run_dir)
    records, _ = load_plantdoc(Path(data_dir), split="train")
    batches = augment_batches(
        make_dataset(records[: config.batch_size], class_map, max_boxes=config.max_boxes),
        image_size=config.image_size,
        batch_size=config.batch_size,
        seed=seed,
        max_boxes=config.max_boxes,
        jitter_scale=config.jitter_scale,
        shuffle_buffer=None,
    )
    batch = next(iter(batches))
    classes = np.asarray(batch["bounding_boxes"]["classes"][0]).astype(int)
    keep = classes >= 0
    return {
        "image": np.clip(np.asarray(batch["images"][0]), 0, 255).astype(np.uint8),
        "boxes": np.asarray(batch["bounding_boxes"]["boxes"][0])[keep].tolist(),
        "classes": [class_map.names[k] for k in classes[keep]],
    }


_OVERRIDABLE = ("image_size", "batch_size", "learning_rate")
_FLOAT_FIELDS = ("learning_rate",)


def _config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    import dataclasses

    from detector.model import get_config

    try:
        config = get_config(name)
    except KeyError as error:
        raise InputError(str(error.args[0]), fix="use --config test, default or full") from None
    unknown = sorted(set(overrides or {}) - set(_OVERRIDABLE))
    if unknown:
        raise InputError(f"cannot override {', '.join(unknown)}", fix=f"override only {', '.join(_OVERRIDABLE)}")
    for key, value in (overrides or {}).items():
        if key in _FLOAT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"{key} must be a positive number, got {value!r}")
        elif not isinstance(value, int) or value < 1:
            raise InputError(f"{key} must be a positive integer, got {value!r}")
    if (overrides or {}).get("image_size", 32) % 32:
        raise InputError(
            f"image_size {overrides['image_size']} is not a multiple of 32",  # type: ignore[index]
            fix="RetinaNet's feature pyramid halves the image 5 times: use 256, 384, 512, 640...",
        )
    return dataclasses.replace(config, **(overrides or {}))
