"""The exact wheel each pip pin installs on a platform: read from the index's simple API.

The pip tier's lock holds versions and the hashes of every file of that version; the conda lock
needs one URL and one sha256 per package and platform. This module asks the index (PEP 691 JSON,
or PEP 503 HTML) for the files of each pinned version, keeps those whose sha256 is in the lock, and
picks the one whose tags rank highest for the platform and interpreter (as an installer would).
The index itself is read by `envtiers.index` (the one client of the package index's simple API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from packaging import tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from envtiers.errors import ResolutionError
from envtiers.index import IndexFile, SimpleIndex
from envtiers.platforms import GLIBC_FLOOR, MACOS_FLOOR, platform_tag_names

__all__ = ["IndexFile", "SimpleIndex", "choose", "supported_tags"]


def supported_tags(platform: str, python: str, virtual: Mapping[str, str]) -> list[tags.Tag]:
    """Tags an interpreter of `python` (e.g. '3.11') accepts on `platform`, best first.

    The platform limits come from the conda tier's virtual packages (`__glibc`, `__osx`), so the
    wheels chosen run wherever the conda part of the lock does.
    """
    major, minor = (int(p) for p in python.split(".")[:2])
    if not platform.startswith(("linux", "osx")):
        raise ResolutionError(f"no wheel tags known for platform {platform}")
    names = platform_tag_names(
        platform, glibc=virtual.get("__glibc", GLIBC_FLOOR), osx=virtual.get("__osx", MACOS_FLOOR)
    )
    interpreter = f"cp{major}{minor}"
    found = list(tags.cpython_tags((major, minor), abis=[interpreter, "abi3", "none"], platforms=names))
    found += list(tags.compatible_tags((major, minor), interpreter=interpreter, platforms=names))
    return found


def choose(files: Iterable[IndexFile], *, hashes: set[str], ranking: Mapping[tags.Tag, int]) -> IndexFile | None:
    """The locked wheel (sha256 in `hashes`) with the best-ranked tag, or None."""
    best: tuple[int, IndexFile] | None = None
    for file in files:
        if not file.filename.endswith(".whl") or file.sha256 not in hashes:
            continue
        try:
            _, _, _, file_tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        rank = min((ranking[t] for t in file_tags if t in ranking), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, file)
    return best[1] if best else None
