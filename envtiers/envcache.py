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

from envtiers.errors import InputError
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


def require_complete(prefix: Path, key: str, *, fix: str) -> None:
    """Raise InputError unless `prefix` holds the finished environment for `key`."""
    if is_complete(prefix, key):
        return
    state = "was never finished (its build failed or was interrupted)" if prefix.exists() else "does not exist"
    if prefix.exists() and read_marker(prefix) is not None:
        state = "was built from another lock"
    raise InputError(f"the environment {prefix} {state}", fix=fix)


def _building_record(lock_dir: Path, prefix: Path) -> Path:
    return lock_dir / f"{_lock_name(prefix)}.building"


def _lock_name(prefix: Path) -> str:
    return hashlib.sha256(str(prefix).encode()).hexdigest()[:16]


def refuse_foreign(prefix: Path, lock_dir: Path) -> None:
    """Raise InputError when `prefix` is a non-empty folder that is not an envtiers environment
    (no marker, and no build of ours was interrupted there): it is never emptied."""
    if not (prefix.exists() or prefix.is_symlink()):
        return
    if prefix.is_dir() and not prefix.is_symlink() and not any(prefix.iterdir()):
        return
    if read_marker(prefix) is not None or _building_record(lock_dir, prefix).is_file():
        return
    raise InputError(
        f"{prefix} is not empty and is not an envtiers environment: envtiers will not delete it",
        fix=f"choose an empty or new folder for --target, or remove {prefix} yourself",
    )


def ensure(
    *,
    tier: str,
    key: str,
    prefix: Path,
    build: Callable[[Path], None],
    lock_dir: Path,
    details: Mapping[str, object] | None = None,
    user_target: bool = False,
) -> EnvInfo:
    """Return the complete environment at `prefix` for `key`, building it with `build` if needed.

    `build(prefix)` must populate an empty `prefix`; any exception it raises propagates and leaves
    the folder unmarked (so the next call rebuilds it). Builders of the same prefix serialise on a
    lock file in `lock_dir`. A `user_target` (a folder the user named, not one in the envtiers
    cache) is emptied only when it is an envtiers environment or a build of ours (InputError else).
    """
    if is_complete(prefix, key):
        return EnvInfo(tier, key, prefix, created=False)
    if user_target:
        refuse_foreign(prefix, lock_dir)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    building = _building_record(lock_dir, prefix)
    with file_lock(lock_dir / f"{_lock_name(prefix)}.lock", what=f"building {prefix}"):
        if is_complete(prefix, key):  # another process finished it while we waited
            return EnvInfo(tier, key, prefix, created=False)
        if user_target:
            refuse_foreign(prefix, lock_dir)
        # Recorded before anything is written at `prefix`: an interrupted build is ours to redo.
        atomic_write_text(building, f"{prefix}\n")
        if prefix.exists() or prefix.is_symlink():
            remove(prefix)
        build(prefix)
        marker = {"format-version": MARKER_FORMAT, "tier": tier, "key": key, "created": time.time(), **(details or {})}
        atomic_write_text(prefix / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
        building.unlink(missing_ok=True)
    return EnvInfo(tier, key, prefix, created=True)


def remove(prefix: Path) -> None:
    # Drop the marker first: a half-deleted environment must never look complete.
    (prefix / MARKER).unlink(missing_ok=True)
    if prefix.is_symlink() or prefix.is_file():
        prefix.unlink()
    else:
        shutil.rmtree(prefix)
