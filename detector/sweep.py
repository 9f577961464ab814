"""A training sweep: many candidates trained in parallel, the best kept by validation AP50.

    python flows/detector_flow.py run --sweep '[{"seed": 0}, {"seed": 1, "learning_rate": 5e-4}]'

- :func:`parse_sweep`: the ``--sweep`` JSON (a list of override dicts) into validated
  :class:`Candidate` objects; an empty text is today's single training (one candidate, no
  overrides). Unknown keys and bad values are refused before anything trains.
- :func:`validation_metrics`: COCO AP / AP50 of a training run's weights on its own validation
  split (the images the candidate never trained on): the score the sweep compares.
- :func:`choose_best`: the winner among the candidates that finished (highest AP50, ties: the
  first in sweep order); :class:`EmptySweepError` when none did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import DetectorError, InputError

# What one sweep entry may set, and the type each value must have. `seed`, `model_config` and
# `epochs` are the flow's parameters; the others replace fields of the model configuration.
SWEEP_KEYS: dict[str, type] = {
    "seed": int,
    "model_config": str,
    "epochs": int,
    "image_size": int,
    "batch_size": int,
    "learning_rate": float,
}
EXAMPLE = '[{"seed": 0}, {"seed": 1, "learning_rate": 5e-4}, {"model_config": "default"}]'


class EmptySweepError(DetectorError):
    """Every candidate of a sweep failed: there is nothing to evaluate or deploy."""


@dataclass(frozen=True)
class Candidate:
    """One entry of a sweep: its position and the overrides it trains with."""

    index: int
    overrides: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        if not self.overrides:
            return "(flow parameters)"
        return ", ".join(f"{key}={value}" for key, value in self.overrides.items())


@dataclass(frozen=True)
class CandidateResult:
    """What the join keeps of each candidate (the `sweep_results` artifact, as dicts)."""

    index: int
    overrides: dict[str, Any]
    pathspec: str
    status: str  # "ok" or "failed"
    ap: float | None = None
    ap50: float | None = None
    train_seconds: float | None = None
    error: str | None = None
    # Wall-clock bounds of the candidate's task body (epoch seconds): how far the sweep overlapped.
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_sweep(text: str) -> list[Candidate]:
    """The candidates of ``--sweep``: one per entry of a JSON list of objects; ``""`` or ``[]``
    gives the single candidate of a plain run. Raises InputError for anything else."""
    if not text.strip():
        return [Candidate(0)]
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise InputError(
            f"--sweep is not valid JSON: {error}", fix=f"pass a JSON list, e.g. --sweep '{EXAMPLE}'"
        ) from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise InputError(
            f"--sweep must be a JSON list of objects, got {type(entries).__name__}: {text.strip()[:60]}",
            fix=f"pass e.g. --sweep '{EXAMPLE}'",
        )
    if not entries:
        return [Candidate(0)]
    return [Candidate(index, _checked(index, entry)) for index, entry in enumerate(entries)]


def _checked(index: int, entry: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(entry) - set(SWEEP_KEYS))
    if unknown:
        raise InputError(
            f"--sweep entry {index} sets unknown key(s) {', '.join(unknown)}",
            fix=f"use only {', '.join(SWEEP_KEYS)}",
        )
    for key, value in entry.items():
        wanted = SWEEP_KEYS[key]
        ok = isinstance(value, str) if wanted is str else _positive_number(value, integer=wanted is int, key=key)
        if not ok:
            kind = {int: "an integer", float: "a positive number", str: "a string"}[wanted]
            raise InputError(f"--sweep entry {index}: {key} must be {kind}, got {value!r}")
    if entry.get("image_size", 32) % 32:
        raise InputError(
            f"--sweep entry {index}: image_size {entry['image_size']} is not a multiple of 32",
            fix="RetinaNet's feature pyramid halves the image 5 times: use 256, 384, 512, 640...",
        )
    return dict(entry)


def _positive_number(value: Any, *, integer: bool, key: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if integer:
        return isinstance(value, int) and (value >= 0 if key == "seed" else value >= 1)
    return math.isfinite(value) and value > 0


def validation_metrics(run_dir: Path, data_dir: Path) -> dict[str, float | None]:
    """{"ap", "ap50"} (None when undefined) of a training run's weights on the validation split
    its training held out (the same split `train_on_folder` made, from the run's seed)."""
    from detector.data import load_plantdoc, make_dataset, split_records
    from detector.evaluate import evaluate
    from detector.export import model_from_weights
    from detector.pipeline import load_run

    record, config, class_map = load_run(run_dir)
    records, _ = load_plantdoc(Path(data_dir), split="train")
    _, val_records = split_records(records, seed=record["seed"])
    if not val_records:
        return {"ap": None, "ap50": None}
    model = model_from_weights(config, class_map, Path(run_dir) / "checkpoints" / record["weights"])
    result = evaluate(
        model,
        make_dataset(val_records, class_map, max_boxes=config.max_boxes),
        image_size=config.image_size,
        class_names=class_map.names,
        batch_size=config.batch_size,
    )
    scores = result.to_dict()
    return {"ap": scores["ap"], "ap50": scores["ap50"]}


def choose_best(results: Sequence[CandidateResult]) -> CandidateResult:
    """The finished candidate with the highest validation AP50 (an undefined AP50 ranks last;
    ties go to the first in sweep order). Raises EmptySweepError when every candidate failed."""
    finished = [result for result in results if result.status == "ok"]
    if not finished:
        failed = "; ".join(f"{r.pathspec}: {_last_line(r.error)}" for r in results)
        raise EmptySweepError(
            f"all {len(results)} candidate(s) of the sweep failed, so there is no model to evaluate: {failed}",
            fix="read each candidate's log (python flows/detector_flow.py logs PATHSPEC), fix the cause, and run again",
        )
    best = finished[0]
    for result in finished[1:]:
        if _score(result) > _score(best):
            best = result
    return best


def _score(result: CandidateResult) -> float:
    return -math.inf if result.ap50 is None or math.isnan(result.ap50) else result.ap50


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "failed"
