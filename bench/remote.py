"""Remote bootstrap benchmarks on the local AWS (.ci/aws-up: moto's Batch runs each job as a real
container in the local engine, on the host network).

- `remote-bootstrap`: per task, the seconds from Metaflow launching it to its step body's first
  line, for a Batch task in each tier (pip and conda: the env is built inside the container from
  the lock; image: nothing is installed) next to the same task run here (pip tier, no --with
  batch), all in one run. One row per tier, the local task as the alternative.

Every task is measured the same way: from the timestamp (milliseconds, this machine's clock) on
the runtime's `<date> <time> [<run>/<step>/<task> (pid N)] Task is starting.` line, printed as it
launches the task's process (for Batch: the `batch step` launcher that submits the job), to the
`self.started_at = time.time()` the step body runs first (bench/flows/bootstrap_flow.py). The
containers share this machine's kernel, so both ends read the same clock. A Batch task's time is
also split at Batch's `startedAt` and at the container's first log line and its own `Task is
starting.` (the engine's timestamps, from CloudWatch Logs): see SEGMENTS.

Setup is untimed and shared by the rows: one package index (the tiny remote lock's packages and
the tools, as tests/remote uses), the tests' conda channel over http, the tiny project's image
built and pushed, the locks, and one untimed warm-up run per side (it builds the local env, ships
the pip tier's files into the datastore, and warms the engine's caches). The flows are the tiny
remote project's (purepkg, Metaflow, boto3), so these are per-task overheads on this machine, not
the cost of the detector's multi-GB env from PyPI.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import REPO, BenchError, Context, envtiers_command, envtiers_env, run, say
from bench.report import Measurement, Row
from bench.sweep import local_aws, remote_index

MODULE = "remote"
FLOW = REPO / "bench" / "flows" / "bootstrap_flow.py"
FLOW_NAME = "BootstrapFlow"
STEPS = ("start", "end")
TIERS = ("pip", "conda", "image")
# The runtime's line as it launches a task (metaflow/runtime.py Worker, metaflow/cli.py logger).
# A Batch task's own "Task is starting." (from inside its container) carries the job id after the
# pathspec, and its launcher's "Task is starting (status ...)" has no full stop: neither matches.
_STARTING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \[(?P<run>[^/\]]+)/(?P<step>\w+)/(?P<task>[^ \]]+) \(pid \d+\)\] "
    r"Task is starting\.$",
    re.MULTILINE,
)
# A Batch task's bootstrap in parts: launched → Batch's startedAt → the container's first line →
# its "Task is starting." (after Metaflow's code package download) → the step body.
SEGMENTS = ("submit", "container", "code_package", "tier_and_step")
SEGMENT_TEXT = {
    "submit": "launched → startedAt (the `batch step` launcher, SubmitJob, moto's queue)",
    "container": "→ the container's first line (moto's RUNNABLE → STARTING → RUNNING steps, `docker run`)",
    "code_package": "→ its `Task is starting.` (Metaflow downloads and unpacks the code package)",
    "tier_and_step": "→ body (the tier's bootstrap, then the step's own process start)",
}
# The pip and conda tiers' bootstrap, rewritten to install from the datastore (envtiers.remote.shipping).
_SHIPPED_MARK = "envtiers.remote.fetch"

NOTES = {
    "pip": "In the container: the shipped files fetched from the datastore, pip installs the tools lock (uv, "
    "packaging) from them, then `envtiers env create --tier pip` builds the env from the pip lock with uv.",
    "conda": "In the container: the shipped files fetched from the datastore (conda packages with their channel "
    "records, wheels), pip installs the tools lock (uv, packaging, py-rattler, conda-lock) from them, then "
    "`envtiers env create --tier conda` installs the conda lock with py-rattler from the local channel the fetch "
    "wrote (the tests' CPython repacked from this machine's, pip) and the lock's pip entries on top with uv.",
    "image": "Nothing installed: the job runs the project's image by digest, its env at /opt/envtiers/env; "
    "besides Metaflow's own bootstrap (download and unpack the code package, flush its logs) the tier adds only "
    "`export ENVTIERS_TIER=image` and `ENVTIERS_IMAGE`.",
}
# Every row's last note: how the figures were taken.
METHOD = (
    "Per task, both steps ({steps}) of each run; launched = the timestamp on the runtime's "
    "`[run/step/task (pid N)] Task is starting.` line, body = `self.started_at = time.time()`, the step's first "
    "line. The local task uses the same S3 datastore (the local AWS), with its env already built."
)


@dataclass(frozen=True)
class Side:
    """One way of running the flow: its project, its `run` arguments and environment."""

    label: str
    root: Path
    args: tuple[str, ...]
    env: dict[str, str]

    @property
    def command(self) -> str:
        return f"python flows/{FLOW.name} {' '.join(self.args)}  # per task: launched to step body"


@dataclass(frozen=True)
class Task:
    """One task's times, epoch seconds; the Batch ones are None for a local task."""

    step: str
    launched: float  # the runtime's "Task is starting." line
    body: float  # the step body's first line
    job_started: float | None = None  # Batch's startedAt
    container_up: float | None = None  # the container's first line ("Setting up task environment.")
    container_starting: float | None = None  # its "Task is starting.": the code package is unpacked
    shipped: bool | None = None  # the job's bootstrap fetched the env from the datastore

    @property
    def bootstrap(self) -> float:
        return self.body - self.launched

    def segments(self) -> dict[str, float] | None:
        """The bootstrap of a Batch task in consecutive parts (None: a local task, or a container
        log without Metaflow's lines)."""
        marks = (self.launched, self.job_started, self.container_up, self.container_starting, self.body)
        if any(mark is None for mark in marks):
            return None
        times = [float(mark) for mark in marks]  # type: ignore[arg-type]
        return {name: later - earlier for name, earlier, later in zip(SEGMENTS, times, times[1:], strict=False)}


def launch_times(output: str, run_id: str) -> dict[str, float]:
    """Step name -> epoch seconds of the runtime's "Task is starting." line for run `run_id` (the
    first, should a task be retried). The logger prints local time, as does `datetime.timestamp`."""
    found: dict[str, float] = {}
    for match in _STARTING.finditer(output):
        if match["run"] == run_id and match["step"] not in found:
            found[match["step"]] = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return found


def _run(aws: Any, side: Side) -> list[Task]:
    """Run the flow once as `side` does; its tasks, with when each was launched and started."""
    from tests.flows.support import client, run_id_of

    _, result = run([sys.executable, side.root / "flows" / FLOW.name, *side.args], cwd=side.root, env=side.env)
    output = result.stdout + result.stderr
    if "Done!" not in output:
        raise BenchError(f"{FLOW_NAME} ({side.label}) did not finish:\n{output[-3000:]}")
    run_id = run_id_of(output)
    launched = launch_times(output, run_id)
    bodies = client(
        f"""
        run = Run("{FLOW_NAME}/{run_id}")
        result = {{s.id: dict(body=s.task.data.started_at, purepkg=s.task.data.purepkg_version,
                             job=s.task.metadata_dict.get("aws-batch-job-id")) for s in run}}
        """,
        cwd=side.root,
        env=side.env,
    )
    missing = [step for step in STEPS if step not in launched or step not in bodies]
    if missing:
        raise BenchError(f"{FLOW_NAME}/{run_id} ({side.label}): no launch line or body time for {missing}")
    if any(bodies[step]["purepkg"] != "2.0" for step in STEPS):
        raise BenchError(f"{FLOW_NAME}/{run_id} ({side.label}) did not run in the lock's env: {bodies}")
    job_ids = [bodies[step]["job"] for step in STEPS if bodies[step]["job"]]
    jobs = {job["jobId"]: job for job in aws.client("batch").describe_jobs(jobs=job_ids)["jobs"]} if job_ids else {}
    tasks = []
    for step in STEPS:
        job = jobs.get(bodies[step]["job"])
        marks = _container_marks(aws, job) if job else {}
        task = Task(
            step=step,
            launched=launched[step],
            body=bodies[step]["body"],
            job_started=job["startedAt"] / 1000 if job else None,
            container_up=marks.get("Setting up task environment."),
            container_starting=marks.get("Task is starting."),
            shipped=_SHIPPED_MARK in " ".join(job["container"]["command"]) if job else None,
        )
        if not task.launched <= (task.job_started or task.launched) <= task.body:
            raise BenchError(f"{FLOW_NAME}/{run_id}/{step} ({side.label}): out of order (clocks?): {task}")
        tasks.append(task)
    return tasks


def _container_marks(aws: Any, job: dict[str, Any]) -> dict[str, float]:
    """Epoch seconds of the first container log line of each of Metaflow's bootstrap messages (the
    engine's own timestamps, which moto copies into CloudWatch Logs)."""
    stream = job.get("container", {}).get("logStreamName")
    if not stream:
        return {}
    events = aws.client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    marks: dict[str, float] = {}
    for event in events:
        marks.setdefault(event["message"].strip(), event["timestamp"] / 1000)
    return marks


def _sides(ctx: Context, stack: contextlib.ExitStack) -> tuple[Any, dict[str, Side], str]:
    """The local AWS, the index, the channel, the three tiny projects (locked; the image built and
    pushed) and the four sides: (aws, sides by name, image reference). Untimed; `stack` stops the
    servers and removes the image."""
    from envtiers.conda.locker import lock as lock_conda
    from envtiers.image.record import read_record
    from envtiers.pip.locker import lock
    from envtiers.settings import load_project
    from tests.conda.channel import ChannelServer, build_channel
    from tests.flows.support import flow_env
    from tests.image.support import add_image_files, docker_ready, infra_from_env, remove_images
    from tests.remote.support import (
        CONDA_TOOLS,
        add_remote_conda_tier,
        write_remote_project,
    )
    from tests.remote.test_batch_tiers import CONDA_ENVIRONMENT
    from tests.support import build_wheel

    reason = docker_ready()
    if reason is not None:
        raise BenchError(f'{reason}: eval "$(.ci/docker-up)"; eval "$(.ci/aws-up)" first')
    aws = local_aws()
    index = remote_index(ctx, "remote-index")
    stack.callback(index.stop)
    say("building the tests' conda channel (a CPython repacked from this one's)")
    work = ctx.tempdir("conda-build")
    channel = build_channel(ctx.tempdir("conda-channel"), work, extra_wheels=[build_wheel(work, "condapkg", "1.0")])
    server = ChannelServer(channel).start()
    stack.callback(server.stop)

    cache = ctx.tempdir("remote-cache")
    projects = ctx.tempdir("remote-projects")
    pip_root = write_remote_project(projects / "pip", index_url=index.url)
    # The channel over http: the job containers share the host network, not this machine's files.
    conda_root = write_remote_project(projects / "conda", index_url=index.url, tools=CONDA_TOOLS)
    add_remote_conda_tier(conda_root, mirror=server.url, environment=CONDA_ENVIRONMENT)
    infra = infra_from_env()
    namespace = infra.namespace()
    image_root = write_remote_project(projects / "image", index_url=index.url)
    add_image_files(image_root, registry=namespace, base_image=infra.base_image)
    for root in (pip_root, conda_root, image_root):
        (root / "flows").mkdir(exist_ok=True)
        shutil.copy2(FLOW, root / "flows" / FLOW.name)
        lock(load_project(root, cache_dir=cache))
    lock_conda(load_project(conda_root, cache_dir=cache))
    login = {"ENVTIERS_REGISTRY_USER": infra.user, "ENVTIERS_REGISTRY_PASSWORD": infra.password}
    say(f"building and pushing the tiny project's image to {namespace}")
    stack.callback(remove_images, [namespace])
    run(
        envtiers_command(image_root, "image", "build"),
        cwd=image_root,
        env=envtiers_env(ENVTIERS_CACHE_DIR=str(cache), **login),
    )
    image = read_record(load_project(image_root, cache_dir=cache)).reference

    def env(**extra: str) -> dict[str, str]:
        # A datastore root per side (shipped files persist across its runs, as across a user's);
        # bytecode cached, as on a user's machine (PYTHONDONTWRITEBYTECODE would time the compiler).
        values = flow_env({**aws.env(), "ENVTIERS_CACHE_DIR": str(cache), **extra})
        values.pop("PYTHONDONTWRITEBYTECODE", None)
        return values

    batch = ("run", "--with", "batch")
    sides = {
        "local": Side("local task (pip tier)", pip_root, ("--environment=envtiers-pip", "run"), env()),
        "pip": Side("Batch task, pip tier", pip_root, ("--environment=envtiers-pip", *batch), env()),
        "conda": Side("Batch task, conda tier", conda_root, ("--environment=envtiers-conda", *batch), env()),
        "image": Side("Batch task, image tier", image_root, ("--environment=envtiers-image", *batch), env(**login)),
    }
    return aws, sides, image


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_remote_bootstrap(ctx: Context) -> list[Row]:
    with contextlib.ExitStack() as stack:
        aws, sides, image = _sides(ctx, stack)
        warmup: dict[str, list[float]] = {}
        for name, side in sides.items():
            say(f"warming up: {side.label}, untimed")
            warmup[name] = [task.bootstrap for task in _run(aws, side)]
        tasks: dict[str, list[Task]] = {name: [] for name in sides}
        for index in range(ctx.reps(3, 1)):
            for name, side in sides.items():  # taking turns, so drift hits every side alike
                done = _run(aws, side)
                tasks[name] += done
                say(f"  {side.label} [{index + 1}]: {', '.join(f'{t.bootstrap:.2f}' for t in done)} s per task")
    local = sides["local"]
    alternative = Measurement(local.label, local.command, [t.bootstrap for t in tasks["local"]], warmup["local"])
    rows = []
    for tier in TIERS:
        side, done = sides[tier], tasks[tier]
        measured = Measurement(side.label, side.command, [t.bootstrap for t in done], warmup[tier])
        inside = [t.body - t.job_started for t in done if t.job_started is not None]
        parts = [segments for t in done if (segments := t.segments()) is not None]
        split = {name: [part[name] for part in parts] for name in SEGMENTS}
        shipped = sum(1 for t in done if t.shipped)
        notes = [
            NOTES[tier],
            f"Remote over local: {measured.median / alternative.median:.1f}× the local task's bootstrap "
            f"({measured.median - alternative.median:+.2f} s per task).",
            f"Batch's startedAt → body: {_median(inside):.2f} s (median).",
            "In parts (medians, s): "
            + "; ".join(f"{SEGMENT_TEXT[name]} {_median(split[name]):.2f}" for name in SEGMENTS)
            + f" ({len(parts)} of {len(done)} tasks had Metaflow's lines in their container log).",
        ]
        if tier != "image":
            notes.append(
                f"Env files from the datastore (shipped by the launcher): {shipped} of {len(done)} tasks"
                + ("; the others from the package index / channel." if shipped < len(done) else ".")
            )
        notes.append(METHOD.format(steps=", ".join(STEPS)))
        rows.append(
            Row(
                id=f"{tier}-bootstrap",
                benchmark="remote-bootstrap",
                title=f"{tier} tier: a Batch task's bootstrap (launched → step body) vs the same task run locally",
                envtiers=measured,
                alternative=alternative,
                notes=notes,
                details={
                    "batch_started_to_body_s": [round(s, 3) for s in inside],
                    **{f"{name}_s": [round(s, 3) for s in split[name]] for name in SEGMENTS},
                    "shipped_tasks": shipped if tier != "image" else None,
                    "image": image if tier == "image" else None,
                },
            )
        )
    return rows


BENCHMARKS = {"remote-bootstrap": bench_remote_bootstrap}
