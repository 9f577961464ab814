"""Environments shipped through the datastore: what the launcher does before remote tasks start.

Without this, every remote task of the pip and conda tiers downloads its files from the package
index or the conda channel (for the detector, ~4 GB of TensorFlow and CUDA wheels per task). With
it, the launcher uploads each file the lock installs on the remote platform (wheels; for the conda
tier also the conda packages, with their channel records) once into the flow's datastore, keyed by
content:

    <root>/files/sha256/<hex>/<filename>      one object per locked file, never rewritten
    <root>/manifests/<tier>-<env key>.json    which files this env needs (format-version 1)

(`<root>` is `<METAFLOW_DATASTORE_SYSROOT_S3>/envtiers`.) Files already there are skipped, so a
second run uploads nothing; downloads and uploads run in parallel with a progress line. The task's
bootstrap (`fetch`) installs from those files alone, `--require-hashes` as always; the conda
packages are laid out as a local channel per locked channel, which the env's build reads instead of
the channel (ENVTIERS_CONDA_MIRRORS), and the conda lock's pip entries come from the fetched wheels.

Opt out (tasks install from their own mirror or index, as before): `[remote] ship_environments =
false` in envs/tiers.toml, or ENVTIERS_SHIP_ENVIRONMENTS=0.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envtiers.errors import DownloadMismatchError, EnvtiersError, InputError
from envtiers.remote.fetch import MANIFEST_FORMAT, s3_client, split_url
from envtiers.settings import Project, env

OPT_OUT_VARIABLE = "ENVTIERS_SHIP_ENVIRONMENTS"
# Set by the launcher once it shipped the env; its bootstrap then fetches from there.
MANIFEST_VARIABLE = "ENVTIERS_SHIPPED_MANIFEST"
SHIPPED_DIR = ".envtiers/shipped"
WORKERS = 8
# The tiers whose remote tasks build their env from the lock (the image tier installs nothing).
SHIPPABLE_TIERS = ("pip", "conda")


class ShippingError(EnvtiersError):
    """The lock's files could not be put into (or read from) the datastore."""


@dataclass(frozen=True)
class LockedFile:
    filename: str
    url: str
    sha256: str
    # A conda package: {"channel": index in the lock's channels, "subdir": ..., "record": its
    # repodata entry}, which the task's fetch writes into its local channel's repodata.json.
    conda: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"files/sha256/{self.sha256}/{self.filename}"


@dataclass(frozen=True)
class ShipResult:
    manifest_url: str
    files: tuple[LockedFile, ...]
    uploaded: int
    uploaded_bytes: int


def shipping_enabled(project: Project) -> bool:
    """ENVTIERS_SHIP_ENVIRONMENTS, else `[remote] ship_environments` (default: on)."""
    value = env(OPT_OUT_VARIABLE)
    if value is not None:
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    setting = project.raw.get("remote", {}).get("ship_environments", True)  # its type: settings.SCHEMA
    return bool(setting)


def pip_files(
    project: Project, platform: str, *, index: Any = None, locks: tuple[str, ...] = ("runtime", "tools")
) -> list[LockedFile]:
    """The wheel each pin of the pip lock and of the tools lock (`locks`) installs on `platform`:
    the files a remote task of the pip tier needs, each once."""
    from envtiers.pip import lockfile
    from envtiers.pip.locker import runtime_lock_path
    from envtiers.wheels import SimpleIndex, declared_virtual, locked_wheels

    paths = {"runtime": runtime_lock_path(project, platform), "tools": project.lockfiles_dir / "tools.txt"}
    locks_read = [paths[name] for name in locks]
    pins = [pin for path in locks_read if path.is_file() for pin in lockfile.read(path, display=project.rel(path)).pins]
    wheels = locked_wheels(
        pins,
        index=index or SimpleIndex(project.pip.index_url),
        platform=platform,
        python=project.python,
        virtual=declared_virtual(project, platform),
        fix="run `make lock` against the index the tasks' files come from",
    )
    found: dict[str, LockedFile] = {}
    for wheel in wheels:
        assert wheel.sha256 is not None  # chosen by the lock's sha256
        found.setdefault(wheel.sha256, LockedFile(wheel.filename, wheel.url, wheel.sha256))
    return sorted(found.values(), key=lambda f: f.filename)


def conda_files(project: Project, platform: str, *, index: Any = None) -> list[LockedFile]:
    """What a remote task of the conda tier installs on `platform`: every conda package of the
    conda lock (read through the project's mirrors, each with its channel record), the lock's pip
    entries and the tools lock's wheels, each once."""
    from envtiers.conda.environment import locked_records, read_platform_lock, wheel_filename

    lock = read_platform_lock(project, platform)
    found: dict[str, LockedFile] = {}
    for record, channel in locked_records(project, lock, platform):
        entry = json.loads(record.to_json())
        for name in ("fn", "url", "channel"):  # where it was read from: not part of the repodata entry
            entry.pop(name, None)
        conda = {"channel": channel, "subdir": str(record.subdir), "record": entry}
        sha256 = record.sha256.hex()
        found.setdefault(sha256, LockedFile(str(record.file_name), str(record.url), sha256, conda=conda))
    for package in lock.package:
        if package.platform == platform and package.manager == "pip":
            sha256 = package.hash.sha256
            found.setdefault(sha256, LockedFile(wheel_filename(package.url), package.url, sha256))
    for wheel in pip_files(project, platform, index=index, locks=("tools",)):
        found.setdefault(wheel.sha256, wheel)
    return sorted(found.values(), key=lambda f: f.filename)


def shipped_files(project: Project, tier: str, platform: str, *, index: Any = None) -> list[LockedFile]:
    if tier == "pip":
        return pip_files(project, platform, index=index)
    _require_shippable(tier)
    return conda_files(project, platform, index=index)


def _require_shippable(tier: str) -> None:
    if tier in SHIPPABLE_TIERS:
        return
    raise InputError(
        f"shipping environments through the datastore is built for the {' and '.join(SHIPPABLE_TIERS)} "
        f"tiers, not {tier}",
        fix=f"set {OPT_OUT_VARIABLE}=0 (the tasks install from the index, as before)",
    )


def remote_env_key(project: Project, tier: str, platform: str) -> str:
    """The cache key of `tier`'s env on `platform` (what the task's envtiers_runtime records)."""
    if tier == "conda":
        from envtiers.conda.environment import env_key as conda_key
        from envtiers.conda.environment import read_platform_lock

        return conda_key(read_platform_lock(project, platform), platform)
    from envtiers.pip import lockfile
    from envtiers.pip.environment import env_key
    from envtiers.pip.locker import runtime_lock_path

    return env_key(project, [lockfile.read(runtime_lock_path(project, platform))])


def conda_channels(project: Project, platform: str) -> list[str]:
    """The conda lock's channels as written, in priority order (the shipped local channels' order)."""
    from envtiers.conda.environment import read_platform_lock

    return [str(c.url) for c in read_platform_lock(project, platform).metadata.channels]


def manifest_url(root: str, *, tier: str, key: str) -> str:
    return f"{root.rstrip('/')}/manifests/{tier}-{key.removeprefix('sha256:')[:32]}.json"


def ship(
    project: Project,
    *,
    root: str,
    tier: str,
    platform: str,
    key: str,
    index: Any = None,
    client: Any = None,
    report: Callable[[str], None] = lambda _: None,
) -> ShipResult:
    """Upload the files of `tier`'s lock for `platform` that `root` (s3://bucket/prefix) lacks,
    then the manifest for env `key`. Raises ShippingError / IndexUnreachableError."""
    _require_shippable(tier)
    client = client or s3_client()
    bucket, prefix = split_url(root.rstrip("/") + "/")
    url = manifest_url(root, tier=tier, key=key)
    shipped = _shipped_before(client, bucket, prefix, url)
    if shipped is not None:  # this env's files are all there: no index, no upload
        report(f"envtiers: the {tier} environment's {len(shipped)} locked files are already in {root}")
        return ShipResult(manifest_url=url, files=shipped, uploaded=0, uploaded_bytes=0)
    files = shipped_files(project, tier, platform, index=index)
    present = _existing(client, bucket, prefix)
    missing = [f for f in files if f.sha256 not in present]
    progress = _Progress(report, total=len(missing), present=len(files) - len(missing))
    with tempfile.TemporaryDirectory(prefix="envtiers-ship-") as scratch, ThreadPoolExecutor(WORKERS) as pool:
        sizes = list(pool.map(lambda f: _upload(f, client, bucket, prefix, Path(scratch), progress), missing))
    manifest = {
        "format-version": MANIFEST_FORMAT,
        "tier": tier,
        "platform": platform,
        "env-key": key,
        "files": [_manifest_entry(f, prefix) for f in files],
    }
    if tier == "conda":
        manifest["conda-channels"] = conda_channels(project, platform)
    manifest_bucket, manifest_key = split_url(url)
    body = (json.dumps(manifest, indent=1) + "\n").encode()
    if not _has(client, manifest_bucket, manifest_key):
        client.put_object(Bucket=manifest_bucket, Key=manifest_key, Body=body)
        sizes.append(len(body))
    report(
        f"envtiers: {len(missing)} of {len(files)} locked files uploaded to {root} "
        f"({sum(sizes) / 1e6:.1f} MB), {len(files) - len(missing)} already there"
    )
    return ShipResult(manifest_url=url, files=tuple(files), uploaded=len(sizes), uploaded_bytes=sum(sizes))


def shipped_bootstrap(
    project: Project, commands: list[str], *, manifest: str, tier: str = "pip", platform: str = "linux-64"
) -> list[str]:
    """The tier's remote bootstrap (`commands`: the tools lock, then `envtiers env create ...`)
    rewritten to install from the shipped files: fetch and verify them, then the tools lock and
    the env with no package index or conda channel, hashes still required."""
    from envtiers.conda.environment import SHIPPED_FILES_VARIABLE
    from envtiers.conda.spec import MIRROR_VARIABLE
    from envtiers.remote.fetch import local_channel
    from envtiers.tiers import REMOTE_TOOLS_DIR, tools_bootstrap

    tools = tools_bootstrap(project)
    if commands[: len(tools)] != tools:
        raise InputError("this tier's remote bootstrap does not start with the tools lock: it cannot be shipped")
    tools_lock = project.rel(project.lockfiles_dir / "tools.txt")
    exports = [f'export ENVTIERS_INDEX_URL="file://$PWD/{SHIPPED_DIR}/simple"']
    if tier == "conda":
        # Each locked channel read from its local copy (a path relative to the code package, which
        # is the task's project root); the lock's pip entries from the fetched wheels.
        mirrors = ",".join(
            f"{channel}={local_channel(Path(SHIPPED_DIR), i)}"
            for i, channel in enumerate(conda_channels(project, platform))
        )
        exports += [
            f"export {MIRROR_VARIABLE}={shlex.quote(mirrors)}",
            f'export {SHIPPED_FILES_VARIABLE}="$PWD/{SHIPPED_DIR}/files"',
        ]
    return [
        f"PYTHONPATH=. python -m envtiers.remote.fetch {shlex.quote(manifest)} {SHIPPED_DIR}",
        "python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes --no-index "
        f"--find-links {SHIPPED_DIR}/files --target {REMOTE_TOOLS_DIR} -r {shlex.quote(tools_lock)}",
        *exports,
        *commands[len(tools) :],
    ]


def _manifest_entry(file: LockedFile, prefix: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"filename": file.filename, "sha256": file.sha256, "key": prefix + file.key}
    if file.conda is not None:
        entry["conda"] = file.conda
    return entry


class _Progress:
    def __init__(self, report: Callable[[str], None], *, total: int, present: int) -> None:
        self.report, self.total, self.present = report, total, present
        self.done = self.bytes = 0
        self.lock = threading.Lock()

    def add(self, size: int) -> None:
        with self.lock:
            self.done += 1
            self.bytes += size
            self.report(
                f"envtiers: shipping {self.done}/{self.total} files ({self.bytes / 1e6:.1f} MB), "
                f"{self.present} already in the datastore"
            )


def _existing(client: Any, bucket: str, prefix: str) -> set[str]:
    """The sha256 of every file already under `prefix`files/sha256/."""
    found: set[str] = set()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "files/sha256/")
        for page in pages:
            for item in page.get("Contents", []):
                found.add(item["Key"][len(prefix) :].split("/")[2])
    except Exception as error:  # botocore: no such bucket, no route, no credentials
        raise ShippingError(
            f"the datastore s3://{bucket}/{prefix} cannot be listed: {error}",
            fix="check METAFLOW_DATASTORE_SYSROOT_S3 and the AWS credentials, "
            f"or set {OPT_OUT_VARIABLE}=0 to let the tasks install from the index",
        ) from None
    return found


def _shipped_before(client: Any, bucket: str, prefix: str, url: str) -> tuple[LockedFile, ...] | None:
    """The files of the manifest at `url` when it and every file it names are in the datastore."""
    from envtiers.remote.fetch import FetchError, read_manifest

    manifest_bucket, manifest_key = split_url(url)
    if not _has(client, manifest_bucket, manifest_key):
        return None
    try:
        entries = read_manifest(client, url)["files"]
    except (FetchError, ValueError, KeyError):
        return None
    present = _existing(client, bucket, prefix)
    if any(entry["sha256"] not in present for entry in entries):
        return None
    return tuple(LockedFile(entry["filename"], "", entry["sha256"]) for entry in entries)


def _has(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except Exception:
        return False
    return True


def _upload(file: LockedFile, client: Any, bucket: str, prefix: str, scratch: Path, progress: _Progress) -> int:
    from envtiers.index import IndexFile, download

    path = scratch / file.sha256 / file.filename
    try:
        size = download(IndexFile(file.filename, file.url, file.sha256), path)
    except DownloadMismatchError:
        what = f"{file.url} does not have the sha256 the lock records ({file.sha256}): not shipped"
        raise ShippingError(what) from None
    client.upload_file(str(path), bucket, prefix + file.key)
    path.unlink()
    progress.add(size)
    return size
