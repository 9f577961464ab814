"""What every benchmark area shares: the run context, timed subprocesses, scratch projects, host facts."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envtiers.settings import REDIRECTING_VARIABLES

REPO = Path(__file__).resolve().parent.parent

# pip settings that only affect how pip talks to the network, not what it installs.
_PIP_KEEP = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_RETRIES")


class BenchError(Exception):
    """A benchmark could not produce a valid measurement (a tool failed, the output was wrong)."""


@dataclass(frozen=True)
class Context:
    quick: bool
    scratch: Path  # removed at the end of the run
    cache_dir: Path  # kept between runs: what makes a second `make bench` warm (pip's wheelhouse)
    repo: Path = REPO

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def tempdir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.scratch))


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    command: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    ok: Sequence[int] = (0,),
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `command` to completion; returns (wall seconds, result). Raises BenchError on another exit code."""
    args = [str(part) for part in command]
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=dict(env) if env is not None else None, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BenchError(f"`{' '.join(args)}` exited with {result.returncode}:\n{tail}")
    return elapsed, result


def sample(count: int, once: Callable[[], float], *, what: str) -> list[float]:
    """`count` timings from `once` (which times its own critical section and cleans up after)."""
    samples = []
    for index in range(count):
        seconds = once()
        say(f"  {what} [{index + 1}/{count}]: {seconds:.3f} s")
        samples.append(seconds)
    return samples


def alternate(runs: Mapping[str, tuple[int, Callable[[], float]]]) -> dict[str, list[float]]:
    """Time each side `count` times, taking turns (A, B, A, B, ...) so drift hits both sides alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for index in range(max((count for count, _ in runs.values()), default=0)):
        for name, (count, once) in runs.items():
            if index < count:
                seconds = once()
                say(f"  {name} [{index + 1}/{count}]: {seconds:.3f} s")
                samples[name].append(seconds)
    return samples


def copy_project(dest: Path, *, lockfiles: bool, drop: Sequence[str] = ()) -> Path:
    """Copy the project's envs/ (and its committed lockfiles/) to `dest`; the originals are never written."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "envs", dest / "envs")
    for name in drop:
        (dest / "envs" / name).unlink()
    if lockfiles:
        shutil.copytree(
            REPO / "lockfiles", dest / "lockfiles", ignore=shutil.ignore_patterns(".envtiers-lock", ".staging-*")
        )
    return dest


# The implementation before the tier registry and the conda records digest (issue 12): rows that
# compare against it export that commit's envtiers, envs/ and lockfiles/ and run them side by side.
PREVIOUS_REVISION = "0c78c2d"


def export_revision(dest: Path, revision: str = PREVIOUS_REVISION) -> Path | None:
    """`revision`'s envtiers/, envs/ and lockfiles/ under `dest` (None when git or the commit is
    missing, e.g. in a shallow clone)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "envtiers", "envs", "lockfiles"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def measure_previous(
    ctx: Context, make_once: Callable[[Path], Callable[[], float]], *, command: str, reps: tuple[int, int], what: str
) -> Any:
    """A Measurement of the previous implementation (None when this clone lacks it): `make_once`
    gets its exported project and returns the timed call; one untimed warm-up, then the samples."""
    from bench.report import Measurement

    previous = export_revision(ctx.tempdir(f"previous-{what.replace(' ', '-')}"))
    if previous is None:
        return None
    once = make_once(previous)
    warmup = [once()]
    samples = sample(ctx.reps(*reps), once, what=f"previous {what}")
    return Measurement(f"envtiers {PREVIOUS_REVISION}", f"{command} (at {PREVIOUS_REVISION})", samples, warmup)


def envtiers_command(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "envtiers", "--project", str(project), *args]


def envtiers_env(**extra: str) -> dict[str, str]:
    """The environment for an envtiers CLI run: this source tree first on sys.path, no leaking settings,
    bytecode cached as on a user's machine."""
    env = {key: value for key, value in os.environ.items() if key not in REDIRECTING_VARIABLES}
    # A user's CLI runs from cached bytecode after its first start; a shell that forbids writing it
    # (PYTHONDONTWRITEBYTECODE, set on some build machines) would time the compiler on every sample.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def clean_pip_env(**extra: str) -> tuple[dict[str, str], list[str]]:
    """An environment where pip reads no config file and no PIP_* setting but network ones.

    Machine-wide pip config can add indexes, find-links and constraints that uv never sees; the
    comparison must use the same package source on both sides. Returns (env, names dropped).
    """
    dropped = sorted(k for k in os.environ if k.startswith("PIP_") and k not in _PIP_KEEP)
    env = {k: v for k, v in os.environ.items() if k not in dropped and k not in REDIRECTING_VARIABLES}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env, dropped


def tool(name: str) -> Path:
    """An executable installed beside this interpreter (the project's .venv)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise BenchError(f"{name} is not installed in {path.parent}: run `make venv` (the dev lock provides it)")
    return path


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9


def same_filesystem(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def count_dists(prefix: Path) -> int:
    """Installed distributions in the environment at `prefix` (a sanity check on what was built)."""
    return sum(1 for _ in prefix.glob("lib/python3*/site-packages/*.dist-info"))


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return result.stdout.strip()


def host_info() -> dict[str, Any]:
    """Facts about this machine and the tools compared, recorded with every run."""
    from envtiers.pip.uv import find_uv

    uv = find_uv()
    try:
        uv_version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        uv_version = None
    commit = _git("rev-parse", "--short", "HEAD") or None
    mem = _first_line("/proc/meminfo", "MemTotal")  # "24684096 kB"
    if mem and mem.endswith(" kB"):
        mem = f"{int(mem.split()[0]) / 1024**2:.0f} GiB RAM"
    if commit and _git("status", "--porcelain", "envtiers", "bench"):
        commit += " (with uncommitted changes in envtiers/ or bench/)"
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "memory": mem,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "uv": uv_version,
        "uv_executable": uv,
        "pip_tools": _version("pip-tools"),
        "pip": _version("pip"),
        "envtiers_commit": commit,
        "loadavg_start": list(os.getloadavg()),
        "tmp_free_gb": round(free_gb(Path(tempfile.gettempdir())), 1),
        "env": {k: os.environ[k] for k in ("PYTHONDONTWRITEBYTECODE", "TMPDIR") if k in os.environ},
    }
