"""Content-addressed environments: one folder per lock hash, trusted only once marked complete.

An environment is built in place (virtual environments are not relocatable), under a file lock,
and the marker file is written last and atomically. A folder without a valid marker is a build
that was interrupted (kill -9, power loss): it is deleted and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from envtiers.fsutil import atomic_write_text, file_lock

MARKER = ".envtiers-complete.json"
MARKER_FORMAT = 1


@dataclass(frozen=True)
class EnvInfo:
    tier: str
    key: str
    prefix: Path
    created: bool  # False when an existing complete environment was reused

    @property
    def python(self) -> Path:
        return python_in(self.prefix)


def python_in(prefix: Path) -> Path:
    return prefix / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def read_marker(prefix: Path) -> dict[str, object] | None:
    """The completion marker of `prefix`, or None when the environment is missing or incomplete."""
    try:
        data = json.loads((prefix / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format-version") != MARKER_FORMAT:
        return None
    return data


def is_complete(prefix: Path, key: str) -> bool:
    marker = read_marker(prefix)
    return marker is not None and marker.get("key") == key and python_in(prefix).exists()


def ensure(
    *,
    tier: str,
    key: str,
    prefix: Path,
    build: Callable[[Path], None],
    lock_dir: Path,
    details: Mapping[str, object] | None = None,
) -> EnvInfo:
    """Return the complete environment at `prefix` for `key`, building it with `build` if needed.

    `build(prefix)` must populate an empty `prefix`; any exception it raises propagates and leaves
    the folder unmarked (so the next call rebuilds it). Builders of the same prefix serialise on a
    lock file in `lock_dir`.
    """
    if is_complete(prefix, key):
        return EnvInfo(tier, key, prefix, created=False)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    lock_name = hashlib.sha256(str(prefix).encode()).hexdigest()[:16]
    with file_lock(lock_dir / f"{lock_name}.lock", what=f"building {prefix}"):
        if is_complete(prefix, key):  # another process finished it while we waited
            return EnvInfo(tier, key, prefix, created=False)
        if prefix.exists() or prefix.is_symlink():
            remove(prefix)
        build(prefix)
        marker = {"format-version": MARKER_FORMAT, "tier": tier, "key": key, "created": time.time(), **(details or {})}
        atomic_write_text(prefix / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return EnvInfo(tier, key, prefix, created=True)


def remove(prefix: Path) -> None:
    # Drop the marker first: a half-deleted environment must never look complete.
    (prefix / MARKER).unlink(missing_ok=True)
    if prefix.is_symlink() or prefix.is_file():
        prefix.unlink()
    else:
        shutil.rmtree(prefix)
