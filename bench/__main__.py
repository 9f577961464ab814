"""`python -m bench [--only NAME,...] [--quick]`: run the benchmarks, write bench/results/."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from bench import app, conda_tier, detector, flow, image, pip_tier, remote, report, review, sweep
from bench.harness import Context, host_info, say

# Every benchmark area: a module with MODULE (its results file) and BENCHMARKS (name -> function).
AREAS: tuple[ModuleType, ...] = (pip_tier, conda_tier, detector, flow, image, sweep, remote, review, app)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _default_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "envtiers-bench"


def build_parser() -> argparse.ArgumentParser:
    names = [name for area in AREAS for name in area.BENCHMARKS]
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmark envtiers against the alternatives.")
    parser.add_argument(
        "--only",
        help=f"comma-separated benchmarks or areas to run (default: all): {', '.join(names)}; "
        f"areas: {', '.join(area.MODULE for area in AREAS)}",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no extra cold-cache pip-compile run")
    parser.add_argument(
        "--cache-dir", type=Path, default=_default_cache(), help="kept between runs (default: %(default)s)"
    )
    parser.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR, help="default: %(default)s")
    return parser


def select(only: str | None) -> set[tuple[str, str]]:
    """(area, benchmark) pairs named by --only. Raises ValueError on an unknown name."""
    every = {(area.MODULE, name) for area in AREAS for name in area.BENCHMARKS}
    if not only:
        return every
    chosen = set()
    for word in filter(None, (w.strip() for w in only.split(","))):
        matches = {pair for pair in every if word in pair}
        if not matches:
            raise ValueError(f"unknown benchmark {word!r}; choose from {', '.join(sorted(n for _, n in every))}")
        chosen |= matches
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        chosen = select(args.only)
    except ValueError as error:
        parser.error(str(error))
    run_id = _now()
    run = {
        "started": run_id,
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "selected": sorted(f"{a}/{b}" for a, b in chosen),
        "host": host_info(),
    }
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="envtiers-bench-"))
    ctx = Context(quick=args.quick, scratch=scratch, cache_dir=args.cache_dir)
    failed: list[str] = []
    try:
        for area in AREAS:
            rows, ran = [], set()
            for name, function in area.BENCHMARKS.items():
                if (area.MODULE, name) not in chosen:
                    continue
                say(f"{area.MODULE}/{name}: start")
                started, clock = _now(), time.perf_counter()
                try:
                    produced = function(ctx)
                except Exception:
                    say(f"{area.MODULE}/{name}: FAILED, its previous results are kept")
                    traceback.print_exc()
                    failed.append(f"{area.MODULE}/{name}")
                    continue
                wall = time.perf_counter() - clock
                say(f"{area.MODULE}/{name}: done in {wall:.0f} s")
                rows += [row.to_dict(run=run_id, started=started, wall_s=wall) for row in produced]
                ran.add(name)
            if ran:
                run["finished"] = _now()
                run["host"]["loadavg_end"] = list(os.getloadavg())
                path = report.write_module(
                    area.MODULE, rows, replaced=ran, run_id=run_id, run=run, results_dir=args.results_dir
                )
                say(f"wrote {path}")
        readme = report.write_readme(args.results_dir)
        say(f"wrote {readme}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(readme.read_text())
    if failed:
        say(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
