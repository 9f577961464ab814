"""The input-hash recipe shared by every lockfile the toolkit writes.

WARNING: the hash of a lockfile's inputs is stored in its header and recomputed by
`envtiers check`. Changing anything in this module (the recipe, the JSON rendering, the field
names the callers pass) changes every hash and marks every committed lockfile stale. Do that only
on purpose, bump `RECIPE`, and say so in the release notes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

RECIPE = 1


def input_hash(parts: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of `parts` (plus the recipe number)."""
    payload = json.dumps({"recipe": RECIPE, **parts}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
