"""A remote task's side of shipped environments: fetch the lock's files from the datastore.

    python -m envtiers.remote.fetch s3://bucket/prefix/envtiers/manifests/pip-<key>.json DEST

Runs on the container's own interpreter before anything is installed, so it needs only the
standard library and boto3 (which Metaflow's task bootstrap installs or the image carries). It
downloads every file the manifest names, in parallel, refuses any whose sha256 differs from the
manifest (which the launcher wrote from the lock), and lays them out as a PEP 503 index:

    DEST/files/<wheel>                 the files, as named on the package index
    DEST/simple/<project>/index.html   links with #sha256= fragments, for `--index-url file://...`
    DEST/conda/<i>/<subdir>/<package>  the conda packages of the lock's i-th channel, with the
    DEST/conda/<i>/<subdir>/repodata.json  records the launcher read from that channel

so that pip, uv and py-rattler install from DEST alone (no package index, no conda channel), with
hashes still required.
Exits 1 with a one-line reason (no traceback) when a file is missing or altered.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from envtiers.hashing import file_digest  # stdlib only, like this module

MANIFEST_FORMAT = 1
WORKERS = 8


class FetchError(Exception):
    def __init__(self, headline: str, *, fix: str) -> None:
        super().__init__(headline)
        self.headline = headline
        self.fix = fix


def s3_client() -> Any:
    """boto3's S3 client, at the datastore's endpoint when Metaflow names one."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("METAFLOW_S3_ENDPOINT_URL") or None)


def split_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise FetchError(f"{url} is not an s3:// URL", fix="set METAFLOW_DATASTORE_SYSROOT_S3 to s3://bucket/prefix")
    return parsed.netloc, parsed.path.lstrip("/")


def read_manifest(client: Any, url: str) -> dict[str, Any]:
    bucket, key = split_url(url)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        raise FetchError(
            f"the environment manifest {url} is not in the datastore",
            fix="run the flow again from the launcher: it ships the lock's files before any remote task starts",
        ) from None
    manifest: dict[str, Any] = json.loads(body)
    if manifest.get("format-version") != MANIFEST_FORMAT:
        raise FetchError(
            f"{url} has manifest format {manifest.get('format-version')}, this bootstrap reads {MANIFEST_FORMAT}",
            fix="launch with the same envtiers version as the code package",
        )
    return manifest


def fetch(manifest_url: str, dest: Path, *, client: Any = None, say: Any = None) -> list[Path]:
    """Download and verify every file of the manifest into DEST/files and write DEST/simple.
    Returns the files. Raises FetchError for a missing or altered file."""
    client = client or s3_client()
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    manifest = read_manifest(client, manifest_url)
    bucket, _ = split_url(manifest_url)
    files_dir = dest / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    entries = manifest["files"]
    done = {"files": 0, "bytes": 0}
    lock = threading.Lock()

    def one(entry: dict[str, Any]) -> Path:
        conda = entry.get("conda")
        folder: Path = files_dir if conda is None else local_channel(dest, int(conda["channel"])) / str(conda["subdir"])
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / str(entry["filename"])
        if not (target.is_file() and file_digest(target) == entry["sha256"]):
            part = target.with_name(target.name + ".part")
            try:
                client.download_file(bucket, entry["key"], str(part))
            except Exception as error:  # botocore's errors: a missing key or no route to the datastore
                raise FetchError(
                    f"{entry['filename']} could not be fetched from s3://{bucket}/{entry['key']}: {error}",
                    fix="run the flow again from the launcher: it re-uploads what the datastore lacks",
                ) from None
            found = file_digest(part)
            if found != entry["sha256"]:
                part.unlink()
                raise FetchError(
                    f"{entry['filename']} in the datastore (s3://{bucket}/{entry['key']}) has sha256 {found}, "
                    f"the lock says {entry['sha256']}: refusing it",
                    fix=f"delete s3://{bucket}/{entry['key']} and run again: the launcher re-uploads it from the index",
                )
            part.rename(target)
        with lock:
            done["files"] += 1
            done["bytes"] += target.stat().st_size
            megabytes = done["bytes"] / 1e6
            say(f"envtiers: fetched {done['files']}/{len(entries)} files ({megabytes:.1f} MB) from the datastore")
        return target

    with ThreadPoolExecutor(WORKERS) as pool:
        paths = list(pool.map(one, entries))
    wheels = [path for path, entry in zip(paths, entries, strict=True) if "conda" not in entry]
    write_simple_index(dest / "simple", wheels, {e["filename"]: e["sha256"] for e in entries})
    if "conda-channels" in manifest:
        write_local_channels(dest, manifest)
    return paths


def local_channel(dest: Path, index: int) -> Path:
    """Where the fetch puts the packages of the lock's `index`-th conda channel."""
    return dest / "conda" / str(index)


def write_local_channels(dest: Path, manifest: dict[str, Any]) -> None:
    """repodata.json for every subdir of every locked channel (the platform's and noarch, empty
    where nothing is locked: py-rattler reads both), from the records in the manifest."""
    subdirs = {manifest["platform"], "noarch"}
    for index in range(len(manifest["conda-channels"])):
        for subdir in subdirs | {e["conda"]["subdir"] for e in manifest["files"] if "conda" in e}:
            packages: dict[str, dict[str, Any]] = {"packages": {}, "packages.conda": {}}
            for entry in manifest["files"]:
                conda = entry.get("conda")
                if conda is not None and conda["channel"] == index and conda["subdir"] == subdir:
                    kind = "packages.conda" if entry["filename"].endswith(".conda") else "packages"
                    packages[kind][entry["filename"]] = conda["record"]
            folder = local_channel(dest, index) / subdir
            folder.mkdir(parents=True, exist_ok=True)
            repodata = {"info": {"subdir": subdir}, **packages, "repodata_version": 1}
            part = folder / "repodata.json.part"
            part.write_text(json.dumps(repodata, indent=1, sort_keys=True) + "\n")
            part.rename(folder / "repodata.json")


def write_simple_index(root: Path, files: list[Path], hashes: dict[str, str]) -> None:
    """PEP 503 pages for `files` (wheels), each link carrying its sha256."""
    projects: dict[str, list[Path]] = {}
    for path in files:
        projects.setdefault(_project(path.name), []).append(path)
    for project, paths in projects.items():
        page = root / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="../../files/{html.escape(p.name)}#sha256={hashes[p.name]}">{html.escape(p.name)}</a>\n'
            for p in sorted(paths)
        )
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")


def _project(filename: str) -> str:
    return re.sub(r"[-_.]+", "-", filename.split("-", 1)[0]).lower()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m envtiers.remote.fetch MANIFEST_URL DEST", file=sys.stderr)
        return 2
    try:
        fetch(argv[0], Path(argv[1]))
    except FetchError as error:
        print(f"envtiers: error: {error.headline}\n  fix: {error.fix}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
