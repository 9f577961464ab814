"""`lockfiles/image.json`: which image the image tier runs, pinned by digest.

`make image` writes it after a push (format version, repository, tag, digest, the lock hash and
base digest it was built from); teams commit theirs. Remote steps run `repository@digest`, so
moving a tag can never change what runs.

Format version 1. Required keys: repository, tag, digest, lock-hash, base-digest. Optional keys
(added by the image builder; readers of version 1 ignore keys they do not know): base-image
(name@digest) and dockerfile-hash, which `envtiers check` compares with docker/Dockerfile.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from envtiers.errors import InputError, LockfileFormatError, UnknownFormatError
from envtiers.fsutil import atomic_write_text
from envtiers.settings import Project

FORMAT_VERSION = 1
RECORD_NAME = "image.json"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRecord:
    repository: str
    tag: str
    digest: str
    lock_hash: str
    base_digest: str
    path: Path
    base_image: str = ""
    dockerfile_hash: str = ""

    @property
    def reference(self) -> str:
        """What a scheduler pulls: the repository pinned by digest."""
        return f"{self.repository}@{self.digest}"


def record_path(project: Project) -> Path:
    return project.lockfiles_dir / RECORD_NAME


def read_record(project: Project) -> ImageRecord:
    """Raises InputError when there is no record, LockfileFormatError when it is unusable."""
    path = record_path(project)
    display = project.rel(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{display} does not exist: no image was built for this lock", fix="run `make image`"
        ) from None
    except ValueError as error:
        raise LockfileFormatError(f"{display} is not valid JSON ({error})", fix="run `make image`") from None
    if not isinstance(data, dict):
        raise LockfileFormatError(f"{display} is not a JSON object", fix="run `make image`")
    version = data.get("format-version")
    if version != FORMAT_VERSION:
        raise UnknownFormatError(
            f"{display} has format version {version!r}; this envtiers reads version {FORMAT_VERSION}",
            fix="upgrade envtiers, or run `make image` to write a new record",
        )
    fields = {}
    for key in ("repository", "tag", "digest", "lock-hash", "base-digest"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise LockfileFormatError(f"{display}: missing or empty {key!r}", fix="run `make image`")
        fields[key.replace("-", "_")] = value
    for key in ("base-image", "dockerfile-hash"):
        value = data.get(key, "")
        if not isinstance(value, str):
            raise LockfileFormatError(f"{display}: {key!r} must be a string", fix="run `make image`")
        fields[key.replace("-", "_")] = value
    if not _DIGEST.match(fields["digest"]):
        raise LockfileFormatError(
            f"{display}: digest {fields['digest']!r} is not sha256:<64 hex>", fix="run `make image`"
        )
    return ImageRecord(path=path, **fields)


def render_record(record: ImageRecord) -> str:
    data = {
        "format-version": FORMAT_VERSION,
        "repository": record.repository,
        "tag": record.tag,
        "digest": record.digest,
        "lock-hash": record.lock_hash,
        "base-digest": record.base_digest,
        "base-image": record.base_image,
        "dockerfile-hash": record.dockerfile_hash,
    }
    return json.dumps(data, indent=2) + "\n"


def write_record(record: ImageRecord) -> None:
    """Write `record` to its path atomically: readers see the old record or the new one."""
    if not _DIGEST.match(record.digest):
        raise LockfileFormatError(f"refusing to record digest {record.digest!r}: not sha256:<64 hex>")
    atomic_write_text(record.path, render_record(record))
