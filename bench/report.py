"""Benchmark results: rows of measurements, one JSON file per area, one README table for all areas.

Each area writes `bench/results/<module>.json` (format below) and the README is re-rendered from
every JSON file there, so running one area (`--only`) keeps the others' last results. Re-running
a benchmark replaces all of its rows in its area's file; rows of benchmarks not run are kept, and
each row names the run (timestamps, host) that measured it.

    {"format-version": 1, "module": "pip-tier", "updated": "...",
     "runs": {"<run id>": {"started": ..., "finished": ..., "host": {...}, ...}},
     "rows": [{"id", "benchmark", "title", "run", "started", "wall_s", "envtiers": {...},
               "alternative": {...} | null, "ratio", "goal": {...} | null, "met", "notes", "details"}]}
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envtiers.fsutil import atomic_write_text

FORMAT_VERSION = 1
RESULTS_DIR = Path(__file__).resolve().parent / "results"
README = "README.md"


@dataclass
class Measurement:
    label: str  # the tool, as the table shows it
    command: str  # what was timed, for the reader to rerun
    samples: list[float]  # seconds
    warmup: list[float] = field(default_factory=list)  # untimed runs, kept for the record

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "command": self.command,
            "n": len(self.samples),
            "median_s": round(self.median, 4),
            "min_s": round(min(self.samples), 4),
            "max_s": round(max(self.samples), 4),
            "samples_s": [round(s, 4) for s in self.samples],
            "warmup_s": [round(s, 4) for s in self.warmup],
        }


@dataclass(frozen=True)
class Goal:
    kind: Literal["ratio_at_least", "value_at_most", "overhead_at_most", "added_at_most"]
    threshold: float

    @property
    def text(self) -> str:
        if self.kind == "ratio_at_least":
            return f"≥{self.threshold:g}× faster"
        if self.kind == "overhead_at_most":
            return f"≤{self.threshold:.0%} overhead"
        if self.kind == "added_at_most":
            return f"≤{self.threshold:g} s added"
        return f"≤{self.threshold:g} s"

    def met(self, *, value: float, ratio: float | None) -> bool | None:
        if self.kind == "ratio_at_least":
            return None if ratio is None else ratio >= self.threshold
        if self.kind == "overhead_at_most":
            # ratio = alternative / envtiers: the overhead of envtiers' side is 1/ratio - 1.
            return None if not ratio else 1 / ratio - 1 <= self.threshold
        if self.kind == "added_at_most":
            # ratio = alternative / envtiers: envtiers' value minus the alternative's.
            return None if ratio is None else value - ratio * value <= self.threshold
        return value <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "threshold": self.threshold, "text": self.text}


@dataclass
class Row:
    id: str  # unique within the area
    benchmark: str  # the selectable name that produced it (`--only`)
    title: str
    envtiers: Measurement
    alternative: Measurement | None = None
    goal: Goal | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """How many times faster envtiers is: alternative median / envtiers median."""
        if self.alternative is None or self.envtiers.median <= 0:
            return None
        return self.alternative.median / self.envtiers.median

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(value=self.envtiers.median, ratio=self.ratio)

    def to_dict(self, *, run: str, started: str, wall_s: float) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "id": self.id,
            "benchmark": self.benchmark,
            "title": self.title,
            "run": run,
            "started": started,
            "wall_s": round(wall_s, 1),
            "envtiers": self.envtiers.to_dict(),
            "alternative": self.alternative.to_dict() if self.alternative else None,
            "ratio": round(ratio, 2) if ratio is not None else None,
            "goal": self.goal.to_dict() if self.goal else None,
            "met": self.met,
            "notes": self.notes,
            "details": self.details,
        }


def load(path: Path) -> dict[str, Any] | None:
    """An area's results file, or None when missing or of another format (it is then rewritten)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format-version") != FORMAT_VERSION:
        return None
    return data


def write_module(
    module: str,
    rows: list[dict[str, Any]],
    *,
    replaced: set[str],
    run_id: str,
    run: dict[str, Any],
    results_dir: Path = RESULTS_DIR,
) -> Path:
    """Merge `rows` (from benchmarks `replaced`) into `<module>.json`, atomically. Returns its path."""
    path = results_dir / f"{module}.json"
    old = load(path) or {}
    kept = [row for row in old.get("rows", []) if row.get("benchmark") not in replaced]
    merged = kept + rows
    runs = {**old.get("runs", {}), run_id: run}
    used = {row["run"] for row in merged}
    data = {
        "format-version": FORMAT_VERSION,
        "module": module,
        "updated": run["finished"],
        "runs": {key: value for key, value in sorted(runs.items()) if key in used},
        "rows": merged,
    }
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2g} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 100:
        return f"{value:.2f} s"
    return f"{value:.0f} s"


def _cell(measurement: dict[str, Any] | None, *, label: bool) -> str:
    if measurement is None:
        return "—"
    text = f"{_seconds(measurement['median_s'])} (n={measurement['n']})"
    return f"{measurement['label']}: {text}" if label else text


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "—"}[value]


def render_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | envtiers | alternative | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row['ratio']:.1f}×" if row.get("ratio") is not None else "—"
        goal = row["goal"]["text"] if row.get("goal") else "—"
        lines.append(
            f"| {row['title']} | {_cell(row['envtiers'], label=False)} | {_cell(row['alternative'], label=True)} "
            f"| {ratio} | {goal} | {_met(row.get('met'))} |"
        )
    return lines


def render_module(data: dict[str, Any]) -> list[str]:
    lines = [f"## {data['module']}", "", *render_table(data["rows"]), ""]
    lines += ["Medians of n timed runs, after an untimed warm-up unless noted; ratio = alternative / envtiers.", ""]
    for row in data["rows"]:
        lines.append(f"- **{row['title']}** ({row['started']})")
        for side in ("envtiers", "alternative"):
            if row.get(side):
                samples = ", ".join(f"{s:g}" for s in row[side]["samples_s"])
                lines.append(f"  - {side}: `{row[side]['command']}`; samples (s): {samples}")
        lines += [f"  - {note}" for note in row.get("notes", [])]
    lines.append("")
    for run_id, run in data["runs"].items():
        host = run.get("host", {})
        load = host.get("loadavg_start", [float("nan")])[0], host.get("loadavg_end", [float("nan")])[0]
        lines.append(
            f"Run {run_id} (`{run.get('command')}`, {run.get('started')} to {run.get('finished')}): "
            f"{host.get('nproc')} CPUs ({host.get('cpu_model')}), {host.get('memory')}, {host.get('platform')}, "
            f"Python {host.get('python')}, {host.get('uv')}, pip-tools {host.get('pip_tools')}, pip {host.get('pip')}, "
            f"envtiers at {host.get('envtiers_commit')}; 1-min load average {load[0]:.1f} at start, "
            f"{load[1]:.1f} at end."
        )
    lines.append("")
    return lines


def render_readme(results_dir: Path = RESULTS_DIR) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`) from the `*.json` files beside this one, which hold",
        "every raw sample and the host facts. Do not edit by hand: rerun `make bench`",
        "(`python -m bench --only NAME[,NAME] [--quick]` for a subset).",
        "",
    ]
    for path in sorted(results_dir.glob("*.json")):
        data = load(path)
        if data is not None and data.get("rows"):
            lines += render_module(data)
    return "\n".join(lines).rstrip() + "\n"


def write_readme(results_dir: Path = RESULTS_DIR) -> Path:
    path = results_dir / README
    atomic_write_text(path, render_readme(results_dir))
    return path
