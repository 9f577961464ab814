"""`lockfiles/image.json`: which image the image tier runs, pinned by digest.

`make image` writes it after a push (format version, repository, tag, digest, the lock hash and
base digest it was built from); teams commit theirs. Remote steps run `repository@digest`, so
moving a tag can never change what runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from envtiers.errors import InputError, LockfileFormatError, UnknownFormatError
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
    if not _DIGEST.match(fields["digest"]):
        raise LockfileFormatError(
            f"{display}: digest {fields['digest']!r} is not sha256:<64 hex>", fix="run `make image`"
        )
    return ImageRecord(path=path, **fields)
