"""Train a RetinaNet: seeded, checkpointed into the run folder, logged to Weights & Biases.

W&B is an observer, never a dependency of the run: it is online only when ``WANDB_API_KEY`` is
set, offline (files under the run folder) otherwise, and any failure of it (cannot start,
cannot log) turns it off with a warning while training goes on.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from detector.augment import augment_batches, resize_batches
from detector.model import ModelConfig, build_model
from detector.tracking import (  # noqa: F401 (re-exported: the W&B side lives in detector.tracking)
    WANDB_INIT_TIMEOUT,
    WANDB_PROJECT,
    RunMode,
    WandbMode,
    finish_wandb,
    resolve_wandb_mode,
    start_wandb,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The trained model and where its traces went.

    ``wandb_mode`` is the mode W&B really ran in ("disabled" when it could not start);
    ``wandb_run`` is the still-open run when ``train`` was asked to keep it, else None.
    """

    model: Any = field(repr=False)
    config: ModelConfig
    history: dict[str, list[float]]
    epochs: int
    seed: int
    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    wandb_mode: RunMode
    seconds: float
    wandb_run: Any = field(default=None, repr=False)


class NeverFail(keras.callbacks.Callback):  # type: ignore[misc]
    """Run another callback, but switch it off with a warning the first time it raises."""

    _HOOKS = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
    )

    def __init__(self, inner: keras.callbacks.Callback, label: str) -> None:
        super().__init__()
        self.inner: keras.callbacks.Callback | None = inner
        self.label = label
        for hook in self._HOOKS:
            setattr(self, hook, self._guarded(hook))

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self.inner is not None:
            self.inner.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        if self.inner is not None:
            self.inner.set_params(params)

    def _guarded(self, hook: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            if self.inner is None:
                return
            try:
                getattr(self.inner, hook)(*args, **kwargs)
            except Exception as error:
                log.warning("%s failed in %s (%s); it is switched off for the rest of the run", self.label, hook, error)
                self.inner = None

        return call


def seed_everything(seed: int) -> None:
    """Start from a fresh Keras session, then seed Python, NumPy, TensorFlow and TF's global generator.

    Without ``clear_session`` a second training in one process numbers its layers differently,
    and that alone changes TensorFlow's floating-point results: same seed, different model.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    # KerasCV layers built without a seed draw from the global generator, which set_random_seed leaves alone.
    tf.random.set_global_generator(tf.random.Generator.from_seed(seed))


def train(
    config: ModelConfig,
    *,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    class_names: Sequence[str],
    run_dir: Path,
    epochs: int | None = None,
    seed: int = 0,
    wandb_mode: WandbMode = "auto",
    wandb_name: str | None = None,
    keep_wandb_run: bool = False,
    verbose: int = 2,
) -> TrainResult:
    """Fit a new RetinaNet of ``config`` on ``train_ds``, validating on ``val_ds`` after each epoch.

    Both datasets hold unbatched examples (see ``detector.augment``). Weights are saved to
    ``run_dir/checkpoints/last.weights.h5`` after every epoch and, with a validation set, to
    ``best.weights.h5`` when the validation loss improves. ``seed`` fixes the initial weights,
    the shuffle order and the augmentation. With ``keep_wandb_run`` the W&B run stays open (in
    ``TrainResult.wandb_run``) so evaluation can log to it; the caller then calls ``finish_wandb``.
    """
    epochs = epochs or config.epochs
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)

    seed_everything(seed)
    model = build_model(config, num_classes=len(class_names))
    train_batches = augment_batches(
        train_ds,
        image_size=config.image_size,
        batch_size=config.batch_size,
        seed=seed,
        max_boxes=config.max_boxes,
        jitter_scale=config.jitter_scale,
    )
    val_batches = (
        None
        if val_ds is None
        else resize_batches(
            val_ds, image_size=config.image_size, batch_size=config.batch_size, max_boxes=config.max_boxes
        )
    )

    last = checkpoints / "last.weights.h5"
    best = checkpoints / "best.weights.h5" if val_batches is not None else None
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.ModelCheckpoint(str(last), save_weights_only=True)]
    if best is not None:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(str(best), save_weights_only=True, monitor="val_loss", save_best_only=True)
        )

    run, mode = start_wandb(
        wandb_mode,
        run_dir=run_dir,
        name=wandb_name,
        config={**config.to_dict(), "seed": seed, "epochs": epochs, "class_names": list(class_names)},
    )
    if run is not None:
        try:
            from wandb.integration.keras import WandbMetricsLogger

            callbacks.append(NeverFail(WandbMetricsLogger(log_freq="epoch"), "W&B logging"))
        except Exception as error:
            log.warning("W&B Keras callback unavailable (%s); training continues without it", error)
    log.info("training %s for %d epochs (seed %d, W&B %s) into %s", config.name, epochs, seed, mode, run_dir)

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # RetinaNet reads the backbone's P3-P5 and never its final normalisation layer.
            warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['post_bn")
            history = model.fit(
                train_batches,
                validation_data=val_batches,
                epochs=epochs,
                callbacks=callbacks,
                shuffle=False,  # augment_batches shuffles, with the seed
                verbose=verbose,
            )
    finally:
        if not keep_wandb_run:
            finish_wandb(run)
    seconds = time.perf_counter() - started
    return TrainResult(
        model=model,
        config=config,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        epochs=epochs,
        seed=seed,
        run_dir=run_dir,
        last_checkpoint=last,
        best_checkpoint=best if best is not None and best.exists() else None,
        wandb_mode=mode,
        seconds=seconds,
        wandb_run=run if keep_wandb_run else None,
    )
