"""The sweep's part of DetectorFlow: training one candidate, and the card's sweep section.

Imported inside steps (the launching interpreter never loads TensorFlow); the choice itself is
`detector.sweep`, which the tests call directly.
"""

from __future__ import annotations

import io
import traceback
from pathlib import Path
from typing import Any

from flow_support import FlowInputError


def check_sweep(text: str) -> list[dict[str, Any]]:
    """The foreach list of `--sweep` (one dict per candidate); FlowInputError when unusable."""
    from detector.errors import InputError
    from detector.sweep import parse_sweep

    try:
        return [{"index": c.index, "overrides": c.overrides} for c in parse_sweep(text)]
    except InputError as error:
        raise FlowInputError(error.headline, fix=error.fix) from None


def failure_text(error: BaseException) -> str:
    """The last lines of a candidate's traceback: what `sweep_results` keeps of a failure."""
    lines = traceback.format_exception(error)
    return "".join(lines)[-4000:].rstrip()


def choose(results: list[dict[str, Any]]) -> Any:
    """The winning CandidateResult; FlowInputError (headline + fix) when every candidate failed."""
    from detector.sweep import CandidateResult, EmptySweepError, choose_best

    try:
        return choose_best([CandidateResult(**result) for result in results])
    except EmptySweepError as error:
        raise FlowInputError(error.headline, fix=error.fix) from None


def sweep_card(results: list[dict[str, Any]], *, chosen: int, plot_dir: Path) -> list[Any]:
    """Card components: one row per candidate (the winner marked) and a bar plot of AP50."""
    from metaflow.cards import Image, Markdown, Table

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    rows = [
        [
            ("★ " if r["index"] == chosen else "") + str(r["index"]),
            ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "(flow parameters)",
            r["status"],
            cell(r["ap"]),
            cell(r["ap50"]),
            "n/a" if r["train_seconds"] is None else f"{r['train_seconds']:.1f}",
            r["pathspec"],
        ]
        for r in results
    ]
    return [
        Markdown(f"## Sweep: {len(results)} candidates, validation AP50 picked candidate {chosen}"),
        Table(rows, headers=["candidate", "overrides", "status", "val AP", "val AP50", "train s", "task"]),
        Image(_plot(results, chosen=chosen, path=plot_dir / "sweep.png"), label="validation AP50 per candidate"),
    ]


def _plot(results: list[dict[str, Any]], *, chosen: int, path: Path) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 0.8 * len(results) + 2), 3.0))
    labels = [str(r["index"]) for r in results]
    values = [r["ap50"] or 0.0 for r in results]
    colours = [
        "tab:green" if r["index"] == chosen else ("tab:red" if r["status"] != "ok" else "tab:blue") for r in results
    ]
    axes.bar(labels, values, color=colours)
    axes.set_xlabel("candidate (green: chosen, red: failed)")
    axes.set_ylabel("validation AP50")
    axes.set_ylim(0, max([1e-3, *values]) * 1.15)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()
