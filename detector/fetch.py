"""`python -m detector fetch plantdoc`: download a public dataset archive at a pinned commit,
verify it, unpack it atomically.

- **Pinned**: a GitHub archive URL of one commit, so the bytes cannot move with the branch.
- **Verified**: the archive's SHA-256 is compared with the pinned digest (or ``--sha256``). No
  digest is pinned for PlantDoc yet: this code was written on a machine that cannot reach
  GitHub, so nobody here has seen the archive's bytes. Until one is pinned, the first fetch
  computes the digest, records it in the dataset's ``FETCHED.json`` and says, loudly, that it was
  verified against nothing (trust on first use); pin it in ``DATASETS`` below.
- **Resumable**: the download goes to a ``.part`` file beside the target; a later run asks for
  the rest with an HTTP ``Range`` request (a server that ignores it sends everything again).
- **Atomic**: the archive is unpacked into a temporary folder beside the target, checked for the
  dataset's layout, then renamed into place; on any failure the temporary folder is removed, so
  the target is either absent, the old copy, or complete.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from detector.errors import ChecksumError, FetchError, InputError

log = logging.getLogger(__name__)

FETCH_RECORD = "FETCHED.json"
FETCH_FORMAT = 1
CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetSource:
    name: str
    repository: str
    commit: str
    sha256: str | None  # of the archive; None: not pinned yet (see the module docstring)
    licence: str
    layout: tuple[str, ...]  # paths the unpacked dataset must have

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repository}/archive/{self.commit}.tar.gz"


DATASETS = {
    "plantdoc": DatasetSource(
        name="plantdoc",
        repository="pratikkayal/PlantDoc-Object-Detection-Dataset",
        # The commit whose TRAIN/ and TEST/ annotations ../shared/data/plantdoc transcribes.
        commit="b479f7232dd7af2060920e49359142904fe15273",
        sha256=None,
        licence="CC BY 4.0 (as the repository's README states); the images were collected from the web",
        layout=("TRAIN", "TEST", "train_labels.csv", "test_labels.csv"),
    )
}


@dataclass(frozen=True)
class Fetched:
    path: Path
    url: str
    sha256: str
    verified: bool  # False: no digest to compare with (trust on first use)
    downloaded_bytes: int  # fetched by this call (less than the archive when resumed; 0 when present)
    resumed_from: int


def fetch_dataset(
    name: str,
    *,
    out: Path,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Fetched:
    """Download, verify and unpack dataset ``name`` into ``out``.

    ``url`` replaces the pinned archive URL (a mirror; tests serve one on 127.0.0.1); ``sha256``
    replaces the pinned digest. An ``out`` already fetched from the same archive is left alone;
    any other existing ``out`` is replaced only with ``force``. Raises InputError (unknown name,
    ``out`` in the way), FetchError (network, truncated download, bad archive), ChecksumError.
    """
    source = DATASETS.get(name)
    if source is None:
        raise InputError(f"unknown dataset {name!r}", fix=f"choose one of: {', '.join(sorted(DATASETS))}")
    url = url or source.url
    expected = (sha256 or source.sha256 or "").lower() or None
    out = Path(out)
    existing = _read_record(out)
    if existing is not None and existing.get("url") == url and (expected in (None, existing.get("sha256"))):
        return Fetched(out, url, existing["sha256"], bool(existing.get("verified")), 0, 0)
    if out.exists() and not force:
        raise InputError(
            f"{out} already exists and was not fetched from {url}",
            fix="remove it, choose another --out, or pass --force to replace it once the new copy is complete",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_unpacks(out)
    part = out.parent / f".{out.name}-{source.commit[:12]}.tar.gz.part"
    resumed_from, fetched = _download(url, part, progress=progress, timeout=timeout)
    digest = _sha256(part)
    if expected is not None and digest != expected:
        part.unlink()
        raise ChecksumError(f"{url}", expected, digest)
    record = {
        "format-version": FETCH_FORMAT,
        "dataset": name,
        "url": url,
        "commit": source.commit,
        "sha256": digest,
        "verified": expected is not None,
        "licence": source.licence,
        "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _unpack(part, out, layout=source.layout, record=record)
    part.unlink()
    return Fetched(out, url, digest, expected is not None, fetched, resumed_from)


def _read_record(out: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((out / FETCH_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format-version") == FETCH_FORMAT else None


def _download(
    url: str, part: Path, *, progress: Callable[[int, int | None], None] | None, timeout: float
) -> tuple[int, int]:
    """Bring ``part`` to the whole archive; returns (bytes it already had, bytes fetched now)."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "envtiers-detector"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the part is whole
            return have, 0
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}", fix="check the URL (or --url)") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(
            f"cannot download {url} ({reason})",
            fix="check the network (GitHub must be reachable) or pass --url with a mirror of the archive",
        ) from None
    with response:
        start = 0
        if response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise FetchError(f"{url}: the server resumed at byte {start}, not {have}", fix=f"delete {part}")
        elif have:
            log.info("the server ignored the Range request: downloading %s from the start", url)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        fetched = 0
        with part.open(mode) as sink:
            fetched = _copy(response, sink, done=start, total=total, progress=progress)
        size = part.stat().st_size
        if total is not None and size < total:
            raise FetchError(
                f"the download of {url} stopped at {size:,} of {total:,} bytes",
                fix="run the same command again: it resumes where it stopped",
            )
    return (start, fetched)


def _range_start(header: str) -> int:
    # "bytes 100-999/1000"
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def _copy(
    response: BinaryIO,
    sink: IO[bytes],
    *,
    done: int,
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> int:
    fetched = 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except (http.client.IncompleteRead, OSError) as error:
            partial = getattr(error, "partial", b"")
            sink.write(partial)
            fetched += len(partial)
            log.info("connection lost after %d bytes (%s)", done + fetched, error)
            break
        if not chunk:
            break
        sink.write(chunk)
        fetched += len(chunk)
        if progress is not None:
            progress(done + fetched, total)
    return fetched


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _remove_stale_unpacks(out: Path) -> None:
    # A run killed outright (SIGKILL, power) leaves its temporary folder: the next one clears it.
    for stale in out.parent.glob(f".{out.name}-unpack-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _unpack(archive: Path, out: Path, *, layout: tuple[str, ...], record: dict[str, Any]) -> None:
    """Unpack ``archive`` (one top folder, as GitHub writes it) to ``out`` via a temporary folder."""
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-unpack-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(temp, filter="data")  # refuses absolute paths, links out, devices
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise FetchError(
                f"{archive.name} does not unpack ({error or type(error).__name__})",
                fix=f"delete {archive} and run the same command again",
            ) from None
        tops = [p for p in temp.iterdir()]
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else temp
        missing = [p for p in layout if not (root / p).exists()]
        if missing:
            raise FetchError(
                f"{archive.name} is not the dataset: it has no {', '.join(missing)}",
                fix="check --url: it must point at the dataset repository's archive",
            )
        (root / FETCH_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        backup = out.parent / f".{out.name}-unpack-old"
        if out.exists():
            os.replace(out, backup)
        try:
            os.replace(root, out)
        except OSError:
            if backup.exists():
                os.replace(backup, out)  # the old copy goes back where it was
            raise
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def terminal_progress(label: str) -> Callable[[int, int | None], None]:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise."""
    state = {"shown": -1, "last": 0.0}
    tty = sys.stderr.isatty()

    def show(done: int, total: int | None) -> None:
        share = done / total if total else None
        if tty:
            now = time.monotonic()
            if now - state["last"] < 0.1 and done != total:
                return
            state["last"] = now
            bar = "" if share is None else "[" + "#" * int(30 * share) + "." * (30 - int(30 * share)) + "] "
            shown = f"{done / 1e6:.1f} MB" + ("" if total is None else f" of {total / 1e6:.1f} MB")
            print(f"\r{label} {bar}{shown}", end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif share is not None and total is not None and int(share * 10) > state["shown"]:
            state["shown"] = int(share * 10)
            print(f"{label}: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({share:.0%})", file=sys.stderr, flush=True)

    return show
