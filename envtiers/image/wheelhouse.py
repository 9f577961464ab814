"""The wheelhouse the image installs from, fetched on the host so the build needs no network.

`pip download` for the image's platform and Python (not the host's), binary-only, hash-checked
against the lock, no dependency resolution. Files the lock does not name are removed, so the
build context carries exactly the locked wheels.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

from envtiers.errors import ToolError
from envtiers.hashing import file_digest
from envtiers.pip import lockfile
from envtiers.platforms import platform_tag_names

log = logging.getLogger(__name__)

# x86-64 Linux wheels the linux-64 lock may name: uv locks for the glibc floor, which accepts every
# older manylinux; pip does not expand a --platform tag, so each one is listed (not plain linux_*).
PLATFORM_TAGS = tuple(tag for tag in platform_tag_names("linux-64") if tag.startswith("manylinux"))
# pip settings from the user's environment that would send it elsewhere than the lock's index.
_PIP_REDIRECTS = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_REQUIRE_HASHES")


def download_command(
    *, python: str, lock: Path, dest: Path, python_version: str, index_url: str | None, cert: str | None = None
) -> list[str]:
    """The pip command that fills `dest` with the lock's wheels for linux-64 / `python_version`."""
    abi = "cp" + python_version.replace(".", "")[:3]
    # --isolated: pip's config files and PIP_* variables (find-links, extra indexes, constraints)
    # must not add sources or change what is fetched; the CA bundle is passed on explicitly.
    argv = [python, "-m", "pip", "--isolated", "download", "--disable-pip-version-check", "--no-input"]
    argv += ["--progress-bar", "off"]
    if cert:
        argv += ["--cert", cert]
    argv += ["--only-binary=:all:", "--no-deps", "--require-hashes"]
    for tag in PLATFORM_TAGS:
        argv += ["--platform", tag]
    argv += ["--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3"]
    argv += ["--abi", "none"]
    if index_url:
        argv += ["--index-url", index_url]
    argv += ["--dest", str(dest), "-r", str(lock)]
    return argv


def locked_hashes(lock: lockfile.PipLock) -> set[str]:
    return {digest.removeprefix("sha256:") for pin in lock.pins for digest in pin.hashes}


def prune(dest: Path, lock: lockfile.PipLock) -> int:
    """Remove files in `dest` whose sha256 the lock does not list; returns how many went."""
    wanted = locked_hashes(lock)
    removed = 0
    for path in sorted(dest.iterdir()) if dest.is_dir() else ():
        if path.is_file() and file_digest(path) not in wanted:
            path.unlink()
            removed += 1
    return removed


def fetch(
    *,
    lock: lockfile.PipLock,
    dest: Path,
    python_version: str,
    index_url: str | None,
    report: Callable[[str], None],
) -> None:
    """Fill `dest` with the lock's wheels (files already there and matching are kept).

    Raises ToolError when pip cannot fetch a wheel or a hash does not match.
    """
    dest.mkdir(parents=True, exist_ok=True)
    prune(dest, lock)  # a stale or tampered file must not satisfy pip's "already downloaded" check
    argv = download_command(
        python=sys.executable,
        lock=lock.path,
        dest=dest,
        python_version=python_version,
        index_url=index_url,
        cert=os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE"),
    )
    log.info("$ %s", shlex.join(argv))
    env = {k: v for k, v in os.environ.items() if k not in _PIP_REDIRECTS}
    tail: deque[str] = deque(maxlen=80)
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, stdin=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:  # progress: one line per wheel collected and saved
            line = line.rstrip("\n")
            tail.append(line)
            if line.startswith(("Collecting", "Saved", "ERROR")):
                report(f"wheelhouse: {line.strip()}")
        returncode = process.wait()
    if returncode != 0:
        output = "\n".join(tail)
        lines = [line for line in tail if line.strip()]
        detail = lines[-1].strip() if lines else "no output"
        if "No module named pip" in output:
            raise ToolError(
                f"{sys.executable} has no pip, which fetches the image's wheelhouse",
                fix="run envtiers from the project's .venv (make venv) or .tools",
            )
        if "DO NOT MATCH THE HASHES" in output:
            detail = "a downloaded wheel does not match the lock's hash"
        raise ToolError(
            f"fetching the linux-64 wheelhouse failed: {detail}", fix="check the index, then `make lock` and retry"
        )
    removed = prune(dest, lock)
    count = sum(1 for _ in dest.iterdir())
    report(f"wheelhouse: {count} locked wheel(s) in {dest}" + (f" ({removed} unlisted removed)" if removed else ""))
