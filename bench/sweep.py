"""Sweep benchmarks on the local AWS (.ci/aws-up: moto's Batch runs each job as a container):

- `batch-sweep`: a 3-candidate foreach on Batch: the wall time of the foreach (first job's start
  to last job's stop, from Batch's DescribeJobs) against the sum of the three jobs' times: the
  concurrency achieved is their ratio.
- `shipped-bootstrap`: a remote pip-tier task's bootstrap (container start to the step's body)
  with the environment shipped through the datastore, against the same task installing from the
  package index (ENVTIERS_SHIP_ENVIRONMENTS=0), in one run.

Both run tests/remote/test_batch_sweep.py's SweepFlow on the tiny remote lock (purepkg, Metaflow,
boto3; tools: uv, packaging) from a local index: per-task overheads on this machine, not the cost
of a 4 GB TensorFlow env from PyPI.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from bench.harness import BenchError, Context, run, say
from bench.report import Measurement, Row


def local_aws() -> Any:
    """The local AWS .ci/aws-up started (tests.remote.support.LocalAws), or BenchError."""
    from tests.remote.support import start_local_aws

    try:
        return start_local_aws()
    except RuntimeError as error:
        raise BenchError(f'no local AWS (eval "$(.ci/docker-up)"; eval "$(.ci/aws-up)" first): {error}') from None


def remote_index(ctx: Context, name: str) -> Any:
    """A started PackageIndex of the remote tests' wheels (the tiny lock, Metaflow, boto3, uv, py-rattler)."""
    from tests.remote.support import add_remote_dists
    from tests.support import PackageIndex, build_packages

    files = ctx.tempdir(name)
    build_packages(files)
    add_remote_dists(files)
    return PackageIndex(files).start()


MODULE = "sweep"
COMMAND = "python flows/sweep_flow.py --environment=envtiers-pip run --max-workers 3"


_SETUP: dict[str, Any] = {}


def _setup(ctx: Context) -> tuple[Any, Path, dict[str, str], Any]:
    """The local AWS, an index, the tiny project and its first (shipping, untimed) run: once for
    both benchmarks of the area."""
    if "done" not in _SETUP:
        _SETUP["done"] = _fresh_setup(ctx)
    return _SETUP["done"]  # type: ignore[no-any-return]


def _fresh_setup(ctx: Context) -> tuple[Any, Path, dict[str, str], Any]:
    from envtiers.pip.locker import lock
    from envtiers.settings import load_project
    from tests.flows.support import flow_env
    from tests.remote.support import REMOTE_SPEC
    from tests.remote.test_batch_sweep import SWEEP_FLOW
    from tests.support import write_project

    aws = local_aws()
    index = remote_index(ctx, "sweep-index")
    root = write_project(
        ctx.tempdir("sweep-project"),
        requirements=REMOTE_SPEC,
        index_url=index.url,
        platforms=("linux-64",),
        tools="uv\npackaging\n",
    )
    flow = root / "flows" / "sweep_flow.py"
    flow.parent.mkdir(exist_ok=True)
    flow.write_text(SWEEP_FLOW)
    cache = ctx.tempdir("sweep-cache")
    lock(load_project(root, cache_dir=cache))
    env = flow_env({**aws.env(), "ENVTIERS_CACHE_DIR": str(cache)})
    say("warming up: the first run ships the env and builds the local one, untimed")
    _jobs(aws, flow, env)
    return aws, flow, env, index


def _jobs(aws: Any, flow: Path, env: dict[str, str]) -> list[dict[str, float]]:
    """Run SweepFlow; per train task: its Batch job's start and stop, and the step body's start."""
    from tests.flows.support import client, run_id_of

    _, result = run(
        [sys.executable, flow, "--environment=envtiers-pip", "run", "--max-workers", "3"], cwd=flow.parents[1], env=env
    )
    output = result.stdout + result.stderr
    if "Done!" not in output:
        raise BenchError(f"SweepFlow did not finish:\n{output[-3000:]}")
    tasks = client(
        f"""
        run = Run("SweepFlow/{run_id_of(output)}")
        result = [dict(job=t.data.envtiers_runtime["job_id"], body=t.data.started_at) for t in run["train"]]
        """,
        cwd=flow.parents[1],
        env=env,
    )
    jobs = {job["jobId"]: job for job in aws.client("batch").describe_jobs(jobs=[t["job"] for t in tasks])["jobs"]}
    return [
        {
            "started": jobs[t["job"]]["startedAt"] / 1000,
            "stopped": jobs[t["job"]]["stoppedAt"] / 1000,
            "body": t["body"],
        }
        for t in tasks
    ]


def bench_batch_sweep(ctx: Context) -> list[Row]:
    aws, flow, env, _ = _setup(ctx)
    spans, sums = [], []
    for _ in range(ctx.reps(3, 1)):
        jobs = _jobs(aws, flow, env)
        spans.append(max(j["stopped"] for j in jobs) - min(j["started"] for j in jobs))
        sums.append(sum(j["stopped"] - j["started"] for j in jobs))
        say(f"  foreach {spans[-1]:.1f} s, jobs summed {sums[-1]:.1f} s")
    concurrency = statistics.median(sums) / statistics.median(spans)
    return [
        Row(
            id="batch-sweep",
            benchmark="batch-sweep",
            title="3-candidate foreach on the local Batch: foreach wall time vs the sum of its 3 jobs' times",
            envtiers=Measurement("foreach wall time", COMMAND + "  # first startedAt to last stoppedAt", spans),
            alternative=Measurement("sum of the 3 jobs", COMMAND + "  # sum of stoppedAt - startedAt", sums),
            notes=[f"concurrency achieved: {concurrency:.2f} jobs at once (of 3): the ratio column"],
        )
    ]


def bench_shipped_bootstrap(ctx: Context) -> list[Row]:
    aws, flow, env, _ = _setup(ctx)
    samples: dict[str, list[float]] = {"datastore": [], "index": []}
    for _ in range(ctx.reps(2, 1)):
        for mode, ship in (("datastore", "1"), ("index", "0")):
            jobs = _jobs(aws, flow, {**env, "ENVTIERS_SHIP_ENVIRONMENTS": ship})
            seconds = [j["body"] - j["started"] for j in jobs]
            samples[mode] += seconds
            say(f"  {mode}: {', '.join(f'{s:.1f}' for s in seconds)} s per task")
    command = COMMAND + "  # per task: container start to step body"
    return [
        Row(
            id="shipped-bootstrap",
            benchmark="shipped-bootstrap",
            title="remote pip-tier task bootstrap (container start to step body): env from the datastore vs the index",
            envtiers=Measurement("from the datastore", command, samples["datastore"]),
            alternative=Measurement(
                "from the package index", "ENVTIERS_SHIP_ENVIRONMENTS=0 " + command, samples["index"]
            ),
            notes=["tiny lock on a local index (as near as the datastore here, unlike PyPI for a real env)"],
        )
    ]


BENCHMARKS = {"batch-sweep": bench_batch_sweep, "shipped-bootstrap": bench_shipped_bootstrap}
