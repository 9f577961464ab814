"""The one place that runs uv: logs each command and turns its failures into envtiers errors."""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from envtiers.errors import (
    EnvironmentBuildError,
    EnvtiersError,
    IndexUnreachableError,
    NoWheelError,
    ResolutionError,
    ToolError,
)

log = logging.getLogger(__name__)

_NO_WHEEL = re.compile(r"Wheels are required for `(?P<pkg>[^`]+)`")
_NO_WHEEL_ALT = re.compile(r"(?:all versions of|versions? of) (?P<pkg>[\w.-]+) (?:has|have) no usable wheels")
# Wheels exist, only for other platforms: "linuxonly==1.0 has no wheels with a matching platform tag".
_NO_PLATFORM_WHEEL = re.compile(
    r"(?:all versions of )?(?P<pkg>[\w.-]+?)(?:==\S+)? (?:has|have) no wheels with a matching platform tag"
)
_NOT_FOUND = re.compile(r"Because (?P<pkg>[\w.-]+) was not found in the package registry")
# PEP 440 allows more than uv does (`pkg===anything`): uv then refuses the spec line itself.
_UNPARSABLE = re.compile(r"Couldn't parse requirement in `(?P<file>[^`]+)`")
_UNREACHABLE = (
    "Failed to fetch",
    "error sending request",
    "Could not connect",
    "Connection refused",
    "dns error",
    "tcp connect error",
    "Failed to read from the distribution cache",
)
_HASH_MISMATCH = ("Hash mismatch", "hash mismatch")


def find_uv() -> str:
    """The uv executable: $ENVTIERS_UV, the one installed beside this interpreter, or PATH."""
    explicit = os.environ.get("ENVTIERS_UV")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    try:
        from uv import find_uv_bin  # the PyPI `uv` package ships the binary

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise ToolError("uv is not installed", fix="run `make` targets (they install it) or `pip install uv`")


class Uv:
    def __init__(self, executable: str | None = None, *, cache_dir: Path | None = None) -> None:
        self.executable = executable or find_uv()
        self.cache_dir = cache_dir

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Never fetch interpreters behind the user's back: a lock names the Python it needs.
        env.setdefault("UV_PYTHON_DOWNLOADS", "never")
        env.pop("VIRTUAL_ENV", None)
        if self.cache_dir is not None:
            env["UV_CACHE_DIR"] = str(self.cache_dir)
        return env

    def run(self, args: Sequence[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = [self.executable, *args]
        log.info("$ %s", shlex.join(command))
        try:
            return subprocess.run(command, cwd=cwd, env=self._env(), capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise ToolError(f"uv not found at {self.executable}", fix="run `make lock` to install it") from None

    def compile(self, args: Sequence[str], *, platform: str, cwd: Path | None = None) -> None:
        """`uv pip compile ...`; raises ResolutionError & co. with what went wrong."""
        result = self.run(["pip", "compile", *args], cwd=cwd)
        if result.returncode != 0:
            raise resolution_error(result.stderr, platform=platform)

    def sync(self, args: Sequence[str], *, what: str) -> None:
        result = self.run(["pip", "sync", *args])
        if result.returncode != 0:
            raise install_error(result.stderr, what=what)

    def venv(self, target: Path, *, python: str) -> None:
        result = self.run(["venv", "--quiet", "--python", python, str(target)])
        if result.returncode != 0:
            full = disk_full(result.stderr, doing=f"creating the environment {target}")
            if full is not None:
                raise full
            raise EnvironmentBuildError(
                f"cannot create a Python {python} environment: {first_error_line(result.stderr)}",
                fix=f"install Python {python} (e.g. `uv python install {python}`) and retry",
            )


def first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        text = line.strip()
        if text.startswith(("error:", "×")) or text.startswith("cause:"):
            return text.removeprefix("error:").removeprefix("×").strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _cause(stderr: str) -> str:
    """uv's explanation of an unsatisfiable resolution, folded into one line."""
    lines = [line.strip() for line in stderr.splitlines()]
    for index, line in enumerate(lines):
        if line.startswith("cause:") or line.startswith("╰─▶"):
            text = line.removeprefix("cause:").removeprefix("╰─▶").strip()
            rest = []
            for follow in lines[index + 1 :]:
                if not follow or follow.startswith("hint:"):
                    break
                rest.append(follow)
            return " ".join([text, *rest])
    return first_error_line(stderr)


def resolution_error(stderr: str, *, platform: str) -> EnvtiersError:
    full = disk_full(stderr, doing=f"locking for {platform}")
    if full is not None:
        return full
    if any(marker in stderr for marker in _UNREACHABLE) and "No solution found" not in stderr:
        return IndexUnreachableError(
            f"the package index could not be reached while locking for {platform}: {first_error_line(stderr)}",
            fix="check the network or [pip] index_url in envs/tiers.toml (ENVTIERS_INDEX_URL overrides it)",
        )
    match = _NO_WHEEL.search(stderr) or _NO_WHEEL_ALT.search(stderr) or _NO_PLATFORM_WHEEL.search(stderr)
    if match:
        return NoWheelError(match["pkg"], platform)
    match = _UNPARSABLE.search(stderr)
    if match:
        causes = [line.strip().removeprefix("cause:").strip() for line in stderr.splitlines() if "cause:" in line]
        return ResolutionError(
            f"uv cannot parse a requirement in {match['file']}: {causes[0] if causes else first_error_line(stderr)}",
            fix=f"correct the requirement in {match['file']}",
        )
    match = _NOT_FOUND.search(stderr)
    if match:
        return ResolutionError(
            f"{match['pkg']} was not found on the package index (locking for {platform})",
            fix=f"check the spelling of {match['pkg']} in envs/requirements.in",
        )
    if "No solution found" in stderr:
        return ResolutionError(
            f"the requirements cannot be satisfied together for {platform}: {_cause(stderr)}",
            fix="relax or correct the conflicting constraints in envs/requirements.in",
        )
    return ToolError(f"uv failed while locking for {platform}: {first_error_line(stderr)}")


def disk_full(stderr: str, *, doing: str) -> EnvtiersError | None:
    """The error for a tool that ran out of disk space, or None."""
    if "No space left on device" not in stderr and "Disk quota exceeded" not in stderr:
        return None
    return EnvironmentBuildError(
        f"no space left on device while {doing}",
        fix="free some space (for environments, or set ENVTIERS_CACHE_DIR to a disk with room), then retry",
    )


def install_error(stderr: str, *, what: str) -> EnvtiersError:
    full = disk_full(stderr, doing=f"installing {what}")
    if full is not None:
        return full
    if "building source distributions is disabled" in stderr.lower() or "--no-build" in stderr:
        return EnvironmentBuildError(
            f"no wheel listed in {what} could be installed (envtiers installs locked wheels only, never "
            f"builds an sdist): {_cause(stderr)}",
            fix="a wheel the lock names is missing or changed on the index; if that is expected, run "
            "`make lock` (with --force) and review the diff",
        )
    if any(marker in stderr for marker in _HASH_MISMATCH):
        return EnvironmentBuildError(
            f"a downloaded file does not match the hash recorded in {what}: {_cause(stderr)}",
            fix="the index served different bytes than at lock time; if that is expected, run "
            "`make lock` (with --force) and review the diff",
        )
    if any(marker in stderr for marker in _UNREACHABLE):
        return IndexUnreachableError(
            f"the package index could not be reached while installing {what}: {first_error_line(stderr)}",
            fix="check the network or [pip] index_url in envs/tiers.toml",
        )
    return EnvironmentBuildError(f"installing {what} failed: {_cause(stderr)}")
