"""The wheelhouse the image installs from, fetched on the host so the build needs no network.

For each pin of the linux-64 lock, the one wheel the image's Python installs (chosen by
`envtiers.wheels` from the index's simple API, with the same tags as the conda lock's pip entries),
downloaded concurrently, each checked against the lock's sha256 before it is renamed into place.
Files already there and matching are kept; files the lock does not name are removed, so the build
context carries exactly the locked wheels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from envtiers.hashing import file_digest
from envtiers.index import IndexFile, SimpleIndex, download
from envtiers.pip import lockfile
from envtiers.wheels import locked_wheels

log = logging.getLogger(__name__)

PLATFORM = "linux-64"
# Concurrent downloads: enough to fill a link with a few large CUDA wheels and many small ones.
WORKERS = 8


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
    virtual: dict[str, str],
    report: Callable[[str], None],
    index: SimpleIndex | None = None,
) -> None:
    """Fill `dest` with the lock's wheels for linux-64 and `python_version`.

    Raises ResolutionError when the index has no locked wheel for a pin, IndexUnreachableError
    for a network fault and DownloadMismatchError when a file's sha256 is not the lock's.
    """
    dest.mkdir(parents=True, exist_ok=True)
    prune(dest, lock)  # a stale or tampered file must not pass for a downloaded one
    wheels = locked_wheels(
        lock.pins,
        index=index or SimpleIndex(index_url),
        platform=PLATFORM,
        python=python_version,
        virtual=virtual,
        fix="run `make lock` against the index the image's wheels come from",
    )
    present = {path.name for path in dest.iterdir() if path.is_file()}  # each one's hash was checked by prune
    missing = [wheel for wheel in wheels if wheel.filename not in present]
    progress = _Progress(report, total=len(missing))
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda wheel: progress.add(wheel, download(wheel, dest / wheel.filename)), missing))
    removed = prune(dest, lock)
    count = sum(1 for path in dest.iterdir() if path.is_file())
    kept = len(wheels) - len(missing)
    report(
        f"wheelhouse: {count} locked wheel(s) in {dest} ({len(missing)} downloaded, "
        f"{progress.bytes / 1e6:.1f} MB; {kept} already there)" + (f", {removed} unlisted removed" if removed else "")
    )


class _Progress:
    def __init__(self, report: Callable[[str], None], *, total: int) -> None:
        self.report, self.total = report, total
        self.done = self.bytes = 0
        self.lock = threading.Lock()

    def add(self, wheel: IndexFile, size: int) -> None:
        with self.lock:
            self.done += 1
            self.bytes += size
            self.report(f"wheelhouse: {self.done}/{self.total} {wheel.filename} ({self.bytes / 1e6:.1f} MB so far)")
