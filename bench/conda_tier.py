"""Benchmarks of the conda tier: locking the real spec against the conda-forge snapshot, the offline
check of every tier, and building a conda environment cold and warm on a local channel.

The lock runs on copies of the project (the repository's lockfiles/ is never written) with
conda-forge mirrored to the snapshot committed in tests/data; its pip entries are looked up on the
package index, as a real `make lock` does. The env benchmark uses the tests' local conda channel (a
relocated CPython, pip and a tiny package): the snapshot holds metadata only, nothing to install.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import (
    PREVIOUS_REVISION,
    REPO,
    BenchError,
    Context,
    copy_project,
    envtiers_command,
    envtiers_env,
    measure_previous,
    run,
    sample,
    say,
)
from bench.report import Goal, Measurement, Row
from envtiers.conda import rattler
from envtiers.conda.environment import create
from envtiers.conda.locker import lock as lock_conda
from envtiers.conda.spec import MIRROR_VARIABLE, load_settings, read_environment
from envtiers.pip.locker import lock as lock_pip
from envtiers.settings import load_project

MODULE = "conda-tier"
SNAPSHOT = REPO / "tests" / "data" / "conda-forge-snapshot"


def _shown(*args: str) -> str:
    return "python -m envtiers " + " ".join(args)


def bench_lock(ctx: Context) -> list[Row]:
    """`envtiers lock --tier conda --force` for linux-64 and osx-arm64 against the snapshot mirror."""
    root = copy_project(ctx.tempdir("conda-lock-project"), lockfiles=True)
    env = envtiers_env(**{MIRROR_VARIABLE: f"conda-forge={SNAPSHOT}"})
    command = envtiers_command(root, "lock", "--tier", "conda", "--force")
    counts: list[str] = []

    def once() -> float:
        elapsed, result = run(command, cwd=ctx.scratch, env=env)
        counts[:] = [line for line in result.stderr.splitlines() if "locked" in line][-1:]
        return elapsed

    warmup = [once()]  # also fills the index client's HTTP cache, as a user's earlier lock has
    samples = sample(ctx.reps(5, 3), once, what="envtiers lock --tier conda")

    def previous_once(previous: Path) -> Callable[[], float]:
        old_command = envtiers_command(previous, "lock", "--tier", "conda", "--force")
        return lambda: run(old_command, cwd=ctx.scratch, env={**env, "PYTHONPATH": str(previous)})[0]

    alternative = measure_previous(
        ctx, previous_once, command=_shown("lock", "--tier", "conda", "--force"), reps=(5, 3), what="conda lock"
    )

    # The solver alone, in-process: what the lock costs without the package index round trips.
    project = load_project(root)
    settings = load_settings(project)
    specs = read_environment(settings.environment_file, display="environment.yml").specs

    def solve_once() -> float:
        cache = ctx.tempdir("rattler-cache")
        started = time.perf_counter()
        for platform in project.platforms:
            rattler.solve(
                channels=[SNAPSHOT.as_uri()],
                specs=specs,
                platform=platform,
                virtual=settings.virtual_packages[platform],
                cache_dir=cache,
            )
        elapsed = time.perf_counter() - started
        shutil.rmtree(cache, ignore_errors=True)
        return elapsed

    solve_samples = sample(ctx.reps(10, 5), solve_once, what="rattler solve, both platforms")
    return [
        Row(
            id="lock",
            benchmark="lock",
            title="Conda lock from scratch, linux-64 + osx-arm64 (`envtiers lock --tier conda --force`)",
            envtiers=Measurement("envtiers/py-rattler", _shown("lock", "--tier", "conda", "--force"), samples, warmup),
            alternative=alternative,
            goal=Goal("value_at_most", 5.0),
            notes=[
                "Whole CLI process: two rattler solves against the conda-forge snapshot (a file:// mirror), "
                "then the simple-API page of each pip pin (16 concurrent requests, pages cached by the index "
                "client and trusted when they list the locked sha256) to pick each platform's wheel.",
                f"Next to the previous implementation ({PREVIOUS_REVISION}: 8 concurrent requests, no cache), same run."
                if alternative
                else f"The previous implementation ({PREVIOUS_REVISION}) is not in this clone: not measured.",
                f"Result: {counts[0] if counts else '?'}.",
                "conda-lock itself cannot run here: it needs a conda/mamba binary (and downloads one).",
            ],
        ),
        Row(
            id="solve",
            benchmark="lock",
            title="py-rattler solve of envs/environment.yml, both platforms, cold repodata cache (in-process)",
            envtiers=Measurement("py-rattler", "rattler.solve(...) x 2 platforms", solve_samples),
            goal=Goal("value_at_most", 1.0),
        ),
    ]


def _fixture_project(ctx: Context) -> tuple[Path, object]:
    """A project whose conda lock solves against the tests' local channel; pip entries from a local index."""
    from tests.conda.channel import build_channel
    from tests.conda.support import add_conda_tier
    from tests.support import PackageIndex, build_packages, build_wheel, write_project

    work = ctx.tempdir("conda-build")
    channel = build_channel(ctx.tempdir("conda-channel"), work, extra_wheels=[build_wheel(work, "condapkg", "1.0")])
    wheels = ctx.tempdir("index")
    build_packages(wheels)
    index = PackageIndex(wheels).start()
    root = write_project(ctx.tempdir("conda-env-project"), requirements="purepkg\nplatpkg\n", index_url=index.url)
    add_conda_tier(root, mirror=channel.as_uri())
    project = load_project(root, cache_dir=ctx.tempdir("lock-cache"))
    lock_pip(project)
    lock_conda(project)
    return root, index


def bench_env(ctx: Context) -> list[Row]:
    """`env create --tier conda` on the fixture channel: cold (empty caches) and warm (package cache kept)."""
    say("building the local conda channel and locking a project against it, untimed")
    root, index = _fixture_project(ctx)
    saved_uv_cache = os.environ.get("UV_CACHE_DIR")
    try:

        def timed_create(cache: Path) -> float:
            project = load_project(root, cache_dir=cache)
            started = time.perf_counter()
            info = create(project)
            elapsed = time.perf_counter() - started
            if not info.created:
                raise BenchError(f"envtiers reused {info.prefix} where it had to build")
            return elapsed

        def cold_once() -> float:
            cache = ctx.tempdir("conda-cold")
            os.environ["UV_CACHE_DIR"] = str(cache / "uv")
            try:
                return timed_create(cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)

        warm_cache = ctx.tempdir("conda-warm")

        def warm_once() -> float:
            os.environ["UV_CACHE_DIR"] = str(warm_cache / "uv")
            shutil.rmtree(warm_cache / "envs", ignore_errors=True)  # the env goes, the package caches stay
            return timed_create(warm_cache)

        warm_warmup = [warm_once()]
        cold = sample(ctx.reps(5, 3), cold_once, what="env create --tier conda (cold)")
        warm = sample(ctx.reps(5, 3), warm_once, what="env create --tier conda (warm package cache)")
    finally:
        index.stop()  # type: ignore[attr-defined]
        if saved_uv_cache is None:
            os.environ.pop("UV_CACHE_DIR", None)
        else:
            os.environ["UV_CACHE_DIR"] = saved_uv_cache
    note = (
        "Fixture channel: a 17 MB relocated CPython, pip and a tiny noarch package (file:// mirror), plus "
        "two wheels from a local index; in-process `create()`, verification of every file included."
    )
    return [
        Row(
            id="env-cold",
            benchmark="env",
            title="Conda env from the lock, cold (empty package and uv caches)",
            envtiers=Measurement("envtiers/py-rattler+uv", _shown("env", "create", "--tier", "conda"), cold),
            goal=Goal("value_at_most", 10.0),
            notes=[note],
        ),
        Row(
            id="env-warm",
            benchmark="env",
            title="Conda env from the lock, warm (packages cached, new prefix)",
            envtiers=Measurement(
                "envtiers/py-rattler+uv", _shown("env", "create", "--tier", "conda"), warm, warm_warmup
            ),
            goal=Goal("value_at_most", 3.0),
            notes=[note],
        ),
    ]


# `envtiers check` with every tier is pip_tier's "check": its project copy carries the conda lock.
def bench_relock(ctx: Context) -> list[Row]:
    """`envtiers lock` (pip, then conda) after a one-line change to envs/requirements.in, next to
    the previous implementation doing the same in the same run."""
    # One line that changes every input hash and no version: a lower bound the lock already meets.
    line = "\nnumpy>=1\n"
    env = envtiers_env(**{MIRROR_VARIABLE: f"conda-forge={SNAPSHOT}"})

    def timed(project: Path) -> Callable[[], float]:
        spec = project / "envs" / "requirements.in"
        original = spec.read_text()
        backup = ctx.tempdir(f"relock-{project.name}-locks")
        shutil.rmtree(backup)
        shutil.copytree(project / "lockfiles", backup)

        def once() -> float:
            shutil.rmtree(project / "lockfiles")
            shutil.copytree(backup, project / "lockfiles")
            spec.write_text(original + line)
            return run(envtiers_command(project, "lock"), cwd=ctx.scratch, env={**env, "PYTHONPATH": str(project)})[0]

        return once

    root = copy_project(ctx.tempdir("relock-project"), lockfiles=True)
    shutil.copytree(REPO / "envtiers", root / "envtiers")
    once = timed(root)
    warmup = [once()]
    samples = sample(ctx.reps(3, 2), once, what="envtiers lock after a one-line spec change")
    alternative = measure_previous(ctx, timed, command=_shown("lock"), reps=(3, 2), what="relock")
    return [
        Row(
            id="relock",
            benchmark="relock",
            title="`make lock` after a one-line change to envs/requirements.in (pip for both platforms, then conda)",
            envtiers=Measurement("envtiers", _shown("lock"), samples, warmup),
            alternative=alternative,
            goal=Goal("value_at_most", 10.0),
            notes=[
                f"The line added: {line.strip()!r} (every input hash changes, no pinned version does).",
                "Whole CLI process; the lockfiles are restored before each sample; the index is the network's.",
            ],
        )
    ]


BENCHMARKS = {"lock": bench_lock, "env": bench_env, "relock": bench_relock}
