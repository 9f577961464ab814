"""DetectorFlow runs as the page lists them, read with Metaflow's Client API, and their models.

A run's summary comes from its ``end`` task, which carries every artifact of the linear flow:
the tier and lock hash the steps ran with (``envtiers_*``), the evaluation (``eval_result``),
the model location, the class names and the parameters. Its model is the export the deploy step
wrote beside ``model_location`` when that folder is on this machine; a run trained elsewhere (AWS
Batch, another laptop) is exported again from its ``trained_run`` artifact into
``config.APP_CACHE_DIR``, once.

The local datastore is found the way Metaflow finds it: ``.metaflow`` in the working directory
or above (``make app`` runs from the project root, where ``make run`` writes it).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from detector import config
from detector.errors import AppError, ExportFormatError, NoRunError
from detector.export import read_metadata

log = logging.getLogger(__name__)

# How many successful runs the page offers; older ones stay reachable by id.
LIST_LIMIT = 30


@dataclass(frozen=True)
class RunSummary:
    """What the page shows of one successful DetectorFlow run."""

    run_id: str
    created_at: datetime | None
    tier: str  # pip, conda, image, or "local" (--environment=local: no lock)
    lock_hash: str | None
    model_config: str
    ap: float | None
    ap50: float | None
    ap_per_class: dict[str, float | None] = field(default_factory=dict)
    ap50_per_class: dict[str, float | None] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    model_location: str | None = None

    @property
    def pathspec(self) -> str:
        return f"{config.FLOW_NAME}/{self.run_id}"

    @property
    def when(self) -> str:
        return self.created_at.strftime("%Y-%m-%d %H:%M") if self.created_at else "unknown time"

    def label(self) -> str:
        """One line for a run picker: id, tier, AP50 and when it ran."""
        return f"{self.run_id} · {self.tier} · AP50 {_metric(self.ap50)} · {self.when}"

    def details(self) -> list[tuple[str, str]]:
        return [
            ("run", self.pathspec),
            ("tier", self.tier),
            ("lock", self.lock_hash or "none (not run in an envtiers tier)"),
            ("AP50", _metric(self.ap50)),
            ("mAP", _metric(self.ap)),
            ("config", self.model_config),
            ("ran", self.when),
        ]


def compare_ap(a: RunSummary, b: RunSummary) -> list[dict[str, str]]:
    """Rows of per-class AP and AP50 of two runs, from their evaluation artifacts, by class name."""
    names = sorted(set(a.ap_per_class) | set(b.ap_per_class))
    return [
        {
            "class": name,
            f"AP run {a.run_id}": _metric(a.ap_per_class.get(name)),
            f"AP run {b.run_id}": _metric(b.ap_per_class.get(name)),
            f"AP50 run {a.run_id}": _metric(a.ap50_per_class.get(name)),
            f"AP50 run {b.run_id}": _metric(b.ap50_per_class.get(name)),
        }
        for name in names
    ]


def _metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _client() -> Any:
    import metaflow

    # Every user's runs, not only $USER's: `make run` names runs after a neutral user under root.
    metaflow.namespace(None)
    return metaflow


def summarize(run: Any) -> RunSummary:
    """A RunSummary from a successful Client API ``Run``."""
    task = run.end_task
    data = task.data
    evaluation = data.eval_result if "eval_result" in task else {}
    tier = data.envtiers_tier if "envtiers_tier" in task else None
    return RunSummary(
        run_id=str(run.id),
        created_at=run.created_at,
        tier=tier or "local",
        lock_hash=data.envtiers_lock_hash if tier and "envtiers_lock_hash" in task else None,
        model_config=str(data.model_config) if "model_config" in task else "?",
        ap=evaluation.get("ap"),
        ap50=evaluation.get("ap50"),
        ap_per_class=dict(evaluation.get("ap_per_class") or {}),
        ap50_per_class=dict(evaluation.get("ap50_per_class") or {}),
        class_names=tuple(data.class_names) if "class_names" in task else (),
        model_location=str(data.model_location) if "model_location" in task else None,
    )


def list_runs(limit: int = LIST_LIMIT) -> list[RunSummary]:
    """The newest ``limit`` successful DetectorFlow runs, newest first ([] when there are none)."""
    client = _client()
    try:
        flow = client.Flow(config.FLOW_NAME)
    except client.exception.MetaflowNotFound:
        return []
    found = []
    for run in flow:  # newest first
        if run.successful:
            found.append(summarize(run))
            if len(found) >= limit:
                break
    return found


def latest_run() -> RunSummary:
    """The newest successful run. Raises NoRunError when there is none."""
    found = list_runs(limit=1)
    if not found:
        raise NoRunError(config.FLOW_NAME)
    return found[0]


def get_run(run_id: str) -> RunSummary:
    """The run ``run_id``. Raises AppError when it does not exist or did not succeed."""
    client = _client()
    run_id = run_id.strip()
    try:
        run = client.Run(f"{config.FLOW_NAME}/{run_id}")
    except client.exception.MetaflowNotFound:
        raise AppError(
            f"there is no {config.FLOW_NAME} run {run_id!r} in this datastore",
            fix="pick a run from the list, or start the app where `make run` ran (its .metaflow folder)",
        ) from None
    if not run.successful:
        raise AppError(
            f"{config.FLOW_NAME}/{run_id} did not finish, so it has no model to show",
            fix="`make resume` finishes it; or pick a successful run",
        )
    return summarize(run)


def export_dir_for(run: RunSummary, *, cache_dir: Path | None = None) -> Path:
    """The export folder that serves ``run``'s model, on this machine.

    Uses the deploy step's export when it is here, else exports the run's ``trained_run``
    artifact into ``cache_dir`` (default ``config.APP_CACHE_DIR``) once. Raises AppError when
    the run carries no trained model.
    """
    if run.model_location and "://" not in run.model_location:
        candidate = Path(run.model_location).parent / "model"
        if _is_export(candidate):
            return candidate
    target = Path(cache_dir or config.APP_CACHE_DIR) / config.FLOW_NAME / run.run_id / "model"
    if _is_export(target):
        return target
    return _export_from_artifacts(run, target)


def _is_export(folder: Path) -> bool:
    try:
        read_metadata(folder)
    except ExportFormatError:
        return False
    return True


def _export_from_artifacts(run: RunSummary, target: Path) -> Path:
    from detector.export import export_model, model_from_weights
    from detector.pipeline import load_run

    task = _client().Run(run.pathspec).end_task
    if "trained_run" not in task:
        raise AppError(
            f"{run.pathspec} has no trained_run artifact and its export ({run.model_location}) is not on this machine",
            fix="run the app where the run was made, or pick another run",
        )
    files: dict[str, bytes] = task.data.trained_run
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".train-", dir=target.parent))
    try:
        for name, content in files.items():
            path = work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        record, model_config, class_map = load_run(work)
        model = model_from_weights(model_config, class_map, work / "checkpoints" / record["weights"])
        log.info("exporting %s from its artifacts into %s", run.pathspec, target)
        export_model(model, model_config, class_map, target, overwrite=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
