"""Datasets on S3: `--data s3://bucket/prefix/` in the flow, `python -m detector upload` to put a
local PlantDoc-layout folder there. Uses Metaflow's S3 client, so the same settings reach it as
reach the datastore (credentials from the environment or role, METAFLOW_S3_ENDPOINT_URL).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from detector.errors import InputError

_DOWNLOADED: dict[str, Path] = {}


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def _root(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def download(url: str, *, dest: Path | None = None, report: Callable[[str], None] = print) -> Path:
    """The dataset under `url` as a local folder: downloaded once per process (a task) into its
    temp dir, with a progress line. Raises InputError when nothing is there."""
    url = _root(url)
    if url in _DOWNLOADED:
        return _DOWNLOADED[url]
    from metaflow import S3

    folder = dest or Path(tempfile.gettempdir()) / f"detector-data-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
    started = time.monotonic()
    with S3(s3root=url) as s3:
        objects = [obj for obj in s3.list_recursive() if obj.exists]
        if not objects:
            raise InputError(
                f"no dataset at {url} (no objects under that prefix)",
                fix=f"upload one: python -m detector upload DIR {url}",
            )
        size = sum(obj.size for obj in objects)
        report(f"data: downloading {len(objects)} files ({size / 1e6:.1f} MB) from {url} to {folder}")
        for obj in s3.get_many([obj.key for obj in objects]):
            target = folder / obj.key
            target.parent.mkdir(parents=True, exist_ok=True)
            Path(obj.path).replace(target)
    report(f"data: downloaded in {time.monotonic() - started:.1f} s")
    _DOWNLOADED[url] = folder
    return folder


def upload(folder: Path, url: str, *, report: Callable[[str], None] = print) -> int:
    """Put every file under `folder` at `url` (keys relative to the folder); returns the count.
    Raises InputError when `folder` is not a directory or `url` is not s3://."""
    if not is_s3(url):
        raise InputError(f"{url} is not an S3 URL", fix="use s3://bucket/prefix/")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder", fix="pass the dataset folder (TRAIN/, TEST/, *_labels.csv)")
    from metaflow import S3

    files = [(str(path.relative_to(folder)), str(path)) for path in sorted(folder.rglob("*")) if path.is_file()]
    with S3(s3root=_root(url)) as s3:
        s3.put_files(files)
    report(f"uploaded {len(files)} files from {folder} to {_root(url)}")
    return len(files)
