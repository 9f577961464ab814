"""Benchmarks of the pip tier: locking, the no-op relock, the offline check, building environments.

All of them work on the detector's real spec (envs/requirements.in + envs/overrides.txt) and the
committed lockfiles, copied into scratch projects: the repository's lockfiles/ is never written.
Where there is an alternative (pip-compile, python -m venv + pip install), both sides run in the
same process, taking turns, on the same inputs; pip runs with no config file and no PIP_* settings
but network ones, so both sides fetch from the same index.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name

from bench.harness import (
    PREVIOUS_REVISION,
    BenchError,
    Context,
    alternate,
    clean_pip_env,
    copy_project,
    count_dists,
    envtiers_command,
    envtiers_env,
    free_gb,
    measure_previous,
    run,
    same_filesystem,
    sample,
    say,
    tool,
)
from bench.report import Goal, Measurement, Row
from envtiers.pip.environment import create
from envtiers.pip.locker import lock, lock_sets, runtime_lock_path
from envtiers.pip.uv import Uv, find_uv
from envtiers.platforms import host_platform_name
from envtiers.settings import load_project

MODULE = "pip-tier"

# pip-compile's closest equivalent of envtiers' uv call: hashes, setuptools pinned like uv does
# (--allow-unsafe), extras stripped like uv's output (and pip-tools 8's default).
PIP_COMPILE_ARGS = ("--generate-hashes", "--allow-unsafe", "--strip-extras", "--quiet")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==", re.MULTILINE)
ENV_MIN_FREE_GB = 12.0  # one pip-installed environment (~7 GB) plus headroom


def _pinned(text: str) -> set[str]:
    return {canonicalize_name(match[1]) for match in PIN.finditer(text)}


def _uv_cache_dir() -> Path:
    result = subprocess.run([find_uv(), "cache", "dir"], capture_output=True, text=True, check=True)
    return Path(result.stdout.strip())


def _files_under(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _index_cache_headers() -> list[str] | None:
    """The HTTP caching headers pip's default index sends (None when it cannot be reached)."""
    try:
        from pip._internal.models.index import PyPI  # pip's own idea of the default index

        url = PyPI.simple_url.rstrip("/") + "/pip/"
    except ImportError:
        return None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as response:
            names = {name.lower() for name in response.headers}
    except OSError:
        return None
    return sorted(names & {"cache-control", "etag", "expires", "last-modified"})


def _shown(*args: str) -> str:
    """An envtiers CLI call as the report prints it (the scratch paths vary from run to run)."""
    return "PYTHONPATH=REPO python -m envtiers --project TMP " + " ".join(args)


def bench_lock(ctx: Context) -> list[Row]:
    """Resolve the spec from scratch: envtiers/uv for every platform vs pip-compile for the host only."""
    root = copy_project(ctx.tempdir("lock-project"), lockfiles=False, drop=("dev-requirements.in", "tools.in"))
    project = load_project(root, cache_dir=ctx.tempdir("envtiers-cache"))
    if {s.kind for s in lock_sets(project)} != {"runtime"}:
        raise BenchError("the lock benchmark expects only runtime lock sets in its scratch project")
    host = host_platform_name()
    if host not in project.platforms:
        raise BenchError(f"this host ({host}) is not a target platform; pip-compile can only lock for the host")
    pip_compile = tool("pip-compile")
    work = ctx.tempdir("pip-compile")
    output = work / "requirements.txt"
    uv_pins: dict[str, int] = {}

    def envtiers_once(uv: Uv) -> float:
        shutil.rmtree(project.lockfiles_dir, ignore_errors=True)  # from scratch, like pip-compile
        started = time.perf_counter()
        results = lock(project, force=True, uv=uv)
        elapsed = time.perf_counter() - started
        if len(results) != len(project.platforms) or not all(r.changed for r in results):
            raise BenchError(f"envtiers lock wrote {results}, expected one new lock per platform")
        uv_pins.update({r.path.stem: r.packages for r in results})
        return elapsed

    def pip_compile_command(cache: Path) -> list[str]:
        spec = str(project.pip.spec)
        return [str(pip_compile), *PIP_COMPILE_ARGS, "--cache-dir", str(cache), "--output-file", str(output), spec]

    def pip_compile_shown(cache: str) -> str:
        shown = shlex.join(pip_compile_command(Path(cache)))
        shorter = ((output, "OUT.txt"), (project.pip.spec, "envs/requirements.in"), (pip_compile, "pip-compile"))
        for path, name in shorter:
            shown = shown.replace(str(path), name)
        return shown

    def pip_compile_once(cache: Path) -> float:
        output.unlink(missing_ok=True)
        env, _ = clean_pip_env(PIP_CACHE_DIR=str(cache))
        elapsed, _ = run(pip_compile_command(cache), cwd=work, env=env)
        if not _pinned(output.read_text()):
            raise BenchError(f"pip-compile wrote no pins to {output}")
        return elapsed

    warm_cache = ctx.cache_dir / "pip-compile-cache"
    # pip-compile takes minutes: one timed run after the warm-up. When its cache dir starts out
    # empty, that warm-up is a cold-cache run and is reported as such instead of running a third.
    warmup_was_cold = _files_under(warm_cache) == 0
    uv = Uv()
    ours, theirs = f"envtiers lock (uv, {len(project.platforms)} platforms)", f"pip-compile ({host})"
    say("lock: warm-up (untimed): envtiers/uv, then pip-compile")
    uv_warmup = [envtiers_once(uv)]
    pip_warmup = [pip_compile_once(warm_cache)]
    samples = alternate(
        {ours: (ctx.reps(5, 3), lambda: envtiers_once(uv)), theirs: (1, lambda: pip_compile_once(warm_cache))}
    )
    host_lock = runtime_lock_path(project, host).read_text()
    compiled = _pinned(output.read_text())
    locked = _pinned(host_lock)
    _, dropped = clean_pip_env()
    details = {
        "platforms": list(project.platforms),
        "host": host,
        "uv_pins": uv_pins,
        "pip_compile_pins": len(compiled),
        "only_in_pip_compile": sorted(compiled - locked),
        "only_in_uv_host_lock": sorted(locked - compiled),
        "uv_cache_dir": str(_uv_cache_dir()),
        "pip_cache_dir": str(warm_cache),
        "pip_http_cache_files": _files_under(warm_cache / "http-v2"),
        "pip_env_dropped": dropped,
    }
    envtiers_text = (
        "envtiers.pip.locker.lock(project, force=True) on a copy of envs/ without dev/tools specs "
        f"({' + '.join(project.platforms)}, no previous lock)"
    )
    notes = [
        f"uv locks {', '.join(f'{k}: {v}' for k, v in uv_pins.items())} packages; pip-compile pins {len(compiled)} "
        f"for {host} (only in pip-compile: {', '.join(details['only_in_pip_compile']) or 'none'}; "
        f"only in uv's: {', '.join(details['only_in_uv_host_lock']) or 'none'}). pip-compile cannot apply "
        "envs/overrides.txt, so it keeps sdist-only `promise` (and builds it to read its metadata).",
        "envtiers is timed in-process (no interpreter start-up); pip-compile as a subprocess (start-up included).",
        f"pip runs with PIP_CONFIG_FILE={shlex.quote('/dev/null')} and without {', '.join(dropped) or 'no'} "
        "(this machine's pip config adds local indexes, find-links and a constraint file uv never sees).",
    ]
    if details["pip_http_cache_files"] == 0:
        headers = details["index_cache_headers"] = _index_cache_headers()
        why = (
            "the index answers without Cache-Control/ETag headers, so pip stores nothing"
            if headers == []
            else f"caching headers seen on the index: {headers}"
        )
        notes.append(
            f"pip's HTTP cache stayed empty ({why}): pip re-downloads every page and metadata file, and "
            "pip-compile warm ≈ cold on this machine."
        )
    rows = [
        Row(
            id="lock-warm",
            benchmark="lock",
            title=f"Lock detector spec, warm cache (envtiers: {' + '.join(project.platforms)}; pip-compile: {host})",
            envtiers=Measurement("envtiers/uv", envtiers_text, samples[ours], uv_warmup),
            alternative=Measurement(
                "pip-compile",
                pip_compile_shown("WARM_CACHE"),
                samples[theirs],
                pip_warmup,
            ),
            goal=Goal("ratio_at_least", 10),
            notes=notes,
            details=details,
        )
    ]
    cold_notes = ["No warm-up: one run each with empty caches."]
    cold_uv = ctx.tempdir("cold-uv-cache")
    try:
        say("lock: envtiers/uv with an empty uv cache")
        uv_cold = [envtiers_once(Uv(cache_dir=cold_uv))]
    finally:
        shutil.rmtree(cold_uv, ignore_errors=True)
    if warmup_was_cold:
        pip_cold = pip_warmup
        cold_notes.append(f"pip-compile's sample is its warm-up run, which started with {warm_cache} empty.")
    elif ctx.quick:
        return rows
    else:
        cold_pip = ctx.tempdir("cold-pip-cache")
        try:
            say("lock: pip-compile with empty caches")
            pip_cold = [pip_compile_once(cold_pip)]
        finally:
            shutil.rmtree(cold_pip, ignore_errors=True)
    rows.append(
        Row(
            id="lock-cold",
            benchmark="lock",
            title="Lock detector spec, cold cache (empty UV_CACHE_DIR; empty PIP_CACHE_DIR + --cache-dir)",
            envtiers=Measurement("envtiers/uv", f"{envtiers_text}, UV_CACHE_DIR empty", uv_cold),
            alternative=Measurement("pip-compile", pip_compile_shown("EMPTY_CACHE"), pip_cold),
            goal=Goal("ratio_at_least", 10),
            notes=cold_notes,
        )
    )
    return rows


def bench_noop(ctx: Context) -> list[Row]:
    """`envtiers lock` when every lockfile is up to date, as the user runs it (a CLI process)."""
    root = copy_project(ctx.tempdir("noop-project"), lockfiles=True)
    command = envtiers_command(root, "lock")
    env = envtiers_env()

    summary: list[str] = []

    def once(*, warmup: bool = False) -> float:
        elapsed, result = run(command, cwd=ctx.scratch, env=env)
        summary[:] = result.stderr.strip().splitlines()[-1:]
        if not warmup and not summary[0].startswith("0 lockfile(s) written"):
            raise BenchError(f"`envtiers lock` was not a no-op: {result.stderr.strip()}")
        return elapsed

    warmup = [once(warmup=True)]  # brings the copy up to date should the committed locks be stale
    notes = ["Whole CLI process, interpreter start-up included."]
    if not summary[0].startswith("0 lockfile(s) written"):
        notes.append(f"The committed lockfiles were stale: the warm-up relocked them ({summary[0]}).")
    samples = sample(ctx.reps(5, 3), once, what="envtiers lock (no-op)")
    count = re.search(r"(\d+) up to date", summary[0])
    return [
        Row(
            id="noop",
            benchmark="noop",
            title=f"No-op relock (`envtiers lock`, nothing changed, {count[1] if count else '?'} lockfiles)",
            envtiers=Measurement("envtiers", _shown("lock"), samples, warmup),
            goal=Goal("value_at_most", 1.0),
            notes=notes,
        )
    ]


def bench_check(ctx: Context) -> list[Row]:
    """`envtiers check` on copies of the committed lockfiles (every tier), as CI runs it (a CLI process)."""
    root = copy_project(ctx.tempdir("check-project"), lockfiles=True)
    command = envtiers_command(root, "check")
    env = envtiers_env()
    outcome: list[str] = []

    def once() -> float:
        elapsed, result = run(command, cwd=ctx.scratch, env=env, ok=(0, 1))
        outcome[:] = [f"exit {result.returncode}: {result.stdout.strip().splitlines()[-1]}"]
        return elapsed

    warmup = [once()]
    samples = sample(ctx.reps(5, 3), once, what="envtiers check")
    notes = [f"Whole CLI process, interpreter start-up included; result: {outcome[0]}."]

    def previous_once(previous: Path) -> Callable[[], float]:
        old_command = envtiers_command(previous, "check")
        return lambda: run(old_command, cwd=ctx.scratch, env=envtiers_env(PYTHONPATH=str(previous)), ok=(0, 1))[0]

    alternative = measure_previous(ctx, previous_once, command=_shown("check"), reps=(5, 3), what="check")
    notes.append(
        f"Next to the previous implementation ({PREVIOUS_REVISION}: conda-lock's parser and content hash on every "
        "check) on its own committed locks, same run."
        if alternative
        else f"The previous implementation ({PREVIOUS_REVISION}) is not in this clone: not measured."
    )
    return [
        Row(
            id="check",
            benchmark="check",
            title="Offline check of every committed lockfile, pip, conda and image (`envtiers check`)",
            envtiers=Measurement("envtiers", _shown("check"), samples, warmup),
            alternative=alternative,
            goal=Goal("value_at_most", 0.5),
            notes=notes,
        )
    ]


def bench_env(ctx: Context) -> list[Row]:
    """Build the host's runtime environment from its lock: envtiers (uv, warm cache) vs venv + pip."""
    host = host_platform_name()
    root = copy_project(ctx.tempdir("env-project"), lockfiles=True)
    lock_path = runtime_lock_path(load_project(root), host)
    wheelhouse = ctx.cache_dir / "pip-wheelhouse"
    pip_env, dropped = clean_pip_env()
    free_before = free_gb(ctx.scratch)
    if free_before < ENV_MIN_FREE_GB:
        raise BenchError(f"only {free_before:.1f} GB free in {ctx.scratch}; the env benchmark needs {ENV_MIN_FREE_GB}")
    envtiers_dists: list[int] = []
    pip_dists: list[int] = []
    pip_version: list[str] = []

    def envtiers_once() -> float:
        cache = ctx.tempdir("envtiers-cache")  # a fresh envtiers cache: no environment to reuse
        try:
            project = load_project(root, cache_dir=cache)
            started = time.perf_counter()
            info = create(project)
            elapsed = time.perf_counter() - started
            if not info.created:
                raise BenchError(f"envtiers reused {info.prefix} from a fresh cache")
            envtiers_dists.append(count_dists(info.prefix))
            return elapsed
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    pip_install = ["install", "--quiet", "--no-deps", "--require-hashes", "--no-index", "--find-links"]

    def pip_once() -> float:
        if free_gb(ctx.scratch) < ENV_MIN_FREE_GB:
            raise BenchError(f"less than {ENV_MIN_FREE_GB} GB free in {ctx.scratch}")
        folder = ctx.tempdir("pip-venv")
        venv = folder / "venv"
        try:
            started = time.perf_counter()
            run([sys.executable, "-m", "venv", venv])
            run([venv / "bin" / "pip", *pip_install, wheelhouse, "-r", lock_path], env=pip_env)
            elapsed = time.perf_counter() - started
            pip_dists.append(count_dists(venv))
            pip_version[:] = [run([venv / "bin" / "pip", "--version"])[1].stdout.split(" from ")[0]]
            return elapsed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    say("env: warm-up (untimed): envtiers create (fills the uv cache), pip download into the wheelhouse")
    envtiers_warmup = [envtiers_once()]
    download = ["download", "--quiet", "--no-deps", "--require-hashes", "-r", lock_path, "-d", wheelhouse]
    pip_warmup = [run([sys.executable, "-m", "pip", *download], env=pip_env)[0]]
    samples = alternate(
        {"envtiers env create": (ctx.reps(3, 2), envtiers_once), "venv + pip install": (ctx.reps(2, 1), pip_once)}
    )
    hit_lib, hit_cli = _cache_hits(ctx, root)
    uv_cache = _uv_cache_dir()
    details = {
        "lock": f"lockfiles/pip/{host}.txt",
        "dists_envtiers": envtiers_dists,
        "dists_pip": pip_dists,
        "venv_pip": pip_version[0] if pip_version else None,
        "uv_cache_dir": str(uv_cache),
        "uv_cache_same_filesystem": same_filesystem(uv_cache, ctx.scratch),
        "wheelhouse": str(wheelhouse),
        "pip_env_dropped": dropped,
        "free_gb_before": round(free_before, 1),
        "free_gb_after": round(free_gb(ctx.scratch), 1),
    }
    headers = details["index_cache_headers"] = _index_cache_headers()
    cache_why = (
        "the index answers without caching headers, so that cache stores nothing"
        if headers == []
        else "which would still revalidate every index page"
    )
    pip_text = (
        f"python -m venv X && PIP_CONFIG_FILE=/dev/null X/bin/pip {shlex.join(pip_install)} WHEELHOUSE "
        f"-r lockfiles/pip/{host}.txt"
    )
    notes = [
        f"Installed distributions: envtiers {envtiers_dists}, pip {pip_dists} ({details['venv_pip']}, the one "
        "`python -m venv` bundles).",
        "pip needs --no-deps: with dependency checks on it asks for `promise` (required by tensorflow-datasets, "
        "dropped by envs/overrides.txt) and fails in --require-hashes mode; uv pip sync installs exactly the lock.",
        '"Warm pip cache" is a local wheelhouse filled by an untimed `pip download` (--no-index --find-links), '
        f"not pip's HTTP cache ({cache_why}). This favours pip: it makes no index requests at all.",
        f"pip runs with PIP_CONFIG_FILE=/dev/null and without {', '.join(dropped) or 'no PIP_* settings'}: this "
        "machine's pip config adds local indexes, find-links and a constraint file.",
        "uv links files from its cache (same filesystem: "
        f"{'yes' if details['uv_cache_same_filesystem'] else 'no'}) and does not byte-compile; pip copies and "
        "byte-compiles. Both are each tool's default.",
        "Each created environment is deleted right after its measurement.",
    ]
    return [
        Row(
            id="env-warm",
            benchmark="env",
            title=f"Create the {host} runtime env from its lock, warm caches",
            envtiers=Measurement(
                "envtiers/uv",
                "envtiers.pip.environment.create(project) with a fresh envtiers cache dir, default uv cache",
                samples["envtiers env create"],
                envtiers_warmup,
            ),
            alternative=Measurement("venv + pip", pip_text, samples["venv + pip install"], pip_warmup),
            goal=Goal("ratio_at_least", 5),
            notes=notes,
            details=details,
        ),
        Row(
            id="env-hit-library",
            benchmark="env",
            title="Env create again, same lock: cache hit (library call)",
            envtiers=Measurement("envtiers", "envtiers.pip.environment.create(project) on a complete env", hit_lib),
        ),
        Row(
            id="env-hit-cli",
            benchmark="env",
            title="Env create again, same lock: cache hit (`envtiers env create`)",
            envtiers=Measurement(
                "envtiers", "ENVTIERS_CACHE_DIR=C PYTHONPATH=REPO python -m envtiers --project TMP env create", hit_cli
            ),
            notes=["Whole CLI process, interpreter start-up included."],
        ),
    ]


def _cache_hits(ctx: Context, root: Path) -> tuple[list[float], list[float]]:
    """Timings of `create` when the environment is already complete: in-process and as the CLI."""
    cache = ctx.tempdir("envtiers-hit-cache")
    try:
        project = load_project(root, cache_dir=cache)
        if not create(project).created:
            raise BenchError("a fresh envtiers cache already held the environment")

        def library_once() -> float:
            started = time.perf_counter()
            info = create(project)
            elapsed = time.perf_counter() - started
            if info.created:
                raise BenchError("envtiers rebuilt a complete environment")
            return elapsed

        command = envtiers_command(root, "env", "create")
        env = envtiers_env(ENVTIERS_CACHE_DIR=str(cache))

        def cli_once() -> float:
            elapsed, result = run(command, cwd=ctx.scratch, env=env)
            if "reused" not in result.stderr:
                raise BenchError(f"`envtiers env create` did not reuse the environment: {result.stderr.strip()}")
            return elapsed

        return sample(5, library_once, what="cache hit (library)"), sample(5, cli_once, what="cache hit (CLI)")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


BENCHMARKS = {"lock": bench_lock, "noop": bench_noop, "check": bench_check, "env": bench_env}
