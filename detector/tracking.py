"""Weights & Biases for the detector, without TensorFlow: the mode a run logs in, starting and
finishing a run. W&B is an observer, never a dependency: it is online only when
``WANDB_API_KEY`` is set, offline (files under the run folder) otherwise, and when it cannot
start the run goes on without it. ``flows/flow_support.py`` resolves the mode in the flow's
``start`` step through this module, so that step does not import TensorFlow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

WandbMode = Literal["auto", "online", "offline", "disabled"]
RunMode = Literal["online", "offline", "disabled"]
_RUN_MODES: dict[str, RunMode] = {"online": "online", "offline": "offline", "disabled": "disabled"}
WANDB_PROJECT = "envtiers-detector"
# Seconds wandb.init may take before the run goes on without it (W&B's own default is 90).
WANDB_INIT_TIMEOUT = float(os.environ.get("DETECTOR_WANDB_INIT_TIMEOUT", "30"))


def resolve_wandb_mode(mode: WandbMode) -> RunMode:
    """The mode W&B should run in: "auto" means WANDB_MODE when set, else online with
    WANDB_API_KEY, else offline (files under the run folder, `wandb sync` uploads them later).

    Raises:
        ValueError: ``mode`` is not one of the W&B modes.
    """
    if mode == "auto":
        chosen = os.environ.get("WANDB_MODE", "").strip().lower()
        if chosen not in _RUN_MODES:
            chosen = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    else:
        chosen = mode
    try:
        return _RUN_MODES[chosen]
    except KeyError:
        raise ValueError(f"unknown W&B mode {mode!r}: choose auto, online, offline or disabled") from None


def start_wandb(
    mode: WandbMode, *, run_dir: Path, config: dict[str, Any], project: str = WANDB_PROJECT, name: str | None = None
) -> tuple[Any, RunMode]:
    """Start a W&B run writing under ``run_dir``; returns ``(run or None, the mode it runs in)``.

    W&B's own failures never propagate: when it cannot start, this logs a warning and returns
    ``(None, "disabled")``. Raises ValueError only for a ``mode`` that is not a W&B mode.
    """
    resolved = resolve_wandb_mode(mode)
    if resolved == "disabled":
        return None, "disabled"
    try:
        import wandb

        run_dir.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", project),
            dir=str(run_dir),
            name=name,
            mode=resolved,
            config=config,
            reinit="finish_previous",
            settings=wandb.Settings(
                init_timeout=WANDB_INIT_TIMEOUT,
                console="off",  # leave stdout alone: pytest and Metaflow capture it
                silent=True,
                disable_git=True,
                save_code=False,
                x_disable_stats=True,
            ),
        )
        return run, resolved
    except Exception as error:  # unreachable server, bad key, broken install: train without it
        log.warning("W&B could not start in %s mode (%s); training continues without it", resolved, error)
        return None, "disabled"


def finish_wandb(run: Any) -> None:
    if run is None:
        return
    try:
        run.finish()
    except Exception as error:
        log.warning("W&B run did not finish cleanly: %s", error)
