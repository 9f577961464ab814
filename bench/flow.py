"""Flow benchmarks: what running each step inside the tier's environment adds to Metaflow's own
per-step cost, next to the same flow under `--environment=local` in the same run.

The flow (bench/flows/overhead_flow.py, five trivial steps) lives in this project, so the pip
tier's env is the one built from the real lockfiles/pip/<host>.txt. It is built (or found) once
before timing: the first env build is `make bench --only env`'s subject, not this one's.
"""

from __future__ import annotations

import os
import sys

from bench.harness import REPO, BenchError, Context, alternate, run, say
from bench.report import Goal, Measurement, Row
from envtiers.settings import REDIRECTING_VARIABLES

MODULE = "flow"
FLOW = REPO / "bench" / "flows" / "overhead_flow.py"
STEPS = 5


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REDIRECTING_VARIABLES or k == "ENVTIERS_CACHE_DIR"}
    env.update(USER="envtiers-bench", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.pop("METAFLOW_USER", None)
    return env


def bench_step_overhead(ctx: Context) -> list[Row]:
    """Wall time of `run` per step: --environment=envtiers-pip vs --environment=local."""
    cwd = ctx.tempdir("flow-datastore")
    env = _env()

    def timed(environment: str):
        def once() -> float:
            seconds, result = run([sys.executable, FLOW, f"--environment={environment}", "run"], cwd=cwd, env=env)
            if "Done!" not in result.stdout + result.stderr:
                raise BenchError(f"the flow did not finish under {environment}")
            return seconds / STEPS

        return once

    say("building (or finding) the pip tier's env for this host, untimed")
    _, first = run([sys.executable, FLOW, "--environment=envtiers-pip", "run"], cwd=cwd, env=env)
    built = "envtiers: built the pip environment" in first.stdout + first.stderr
    warm = {"envtiers-pip": timed("envtiers-pip")(), "local": timed("local")()}
    reps = ctx.reps(5, 3)
    samples = alternate({"envtiers-pip": (reps, timed("envtiers-pip")), "local": (reps, timed("local"))})
    command = f"python bench/flows/overhead_flow.py --environment={{}} run  # wall time / {STEPS} steps"
    return [
        Row(
            id="step-overhead",
            benchmark="step-overhead",
            title=f"Metaflow seconds per step, {STEPS}-step flow: pip tier env vs --environment=local",
            envtiers=Measurement(
                "envtiers-pip", command.format("envtiers-pip"), samples["envtiers-pip"], [warm["envtiers-pip"]]
            ),
            alternative=Measurement("local", command.format("local"), samples["local"], [warm["local"]]),
            goal=Goal("added_at_most", 1.0),
            notes=[
                "Per step: the run's wall time divided by its steps (launcher start-up included on both sides).",
                f"The env from lockfiles/pip/<host>.txt was {'built by' if built else 'already in the cache before'} "
                "the untimed first run; every timed run reuses it.",
            ],
        )
    ]


BENCHMARKS = {"step-overhead": bench_step_overhead}
