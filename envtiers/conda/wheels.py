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

__all__ = ["IndexFile", "SimpleIndex", "choose", "supported_tags"]


def supported_tags(platform: str, python: str, virtual: Mapping[str, str]) -> list[tags.Tag]:
    """Tags an interpreter of `python` (e.g. '3.11') accepts on `platform`, best first.

    The platform limits come from the conda tier's virtual packages (`__glibc`, `__osx`), so the
    wheels chosen run wherever the conda part of the lock does.
    """
    major, minor = (int(p) for p in python.split(".")[:2])
    if platform.startswith("linux"):
        arch = "x86_64" if platform == "linux-64" else "aarch64"
        glibc = virtual.get("__glibc", "2.28").split(".")
        top = int(glibc[1]) if len(glibc) > 1 else 28
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        names = []
        for m in range(top, 4, -1):
            names.append(f"manylinux_2_{m}_{arch}")
            if m in legacy:
                names.append(f"{legacy[m]}_{arch}")
        names.append(f"linux_{arch}")
    elif platform.startswith("osx"):
        arch = "arm64" if platform == "osx-arm64" else "x86_64"
        osx = virtual.get("__osx", "13.0").split(".")
        names = list(tags.mac_platforms((int(osx[0]), int(osx[1]) if len(osx) > 1 else 0), arch))
    else:
        raise ResolutionError(f"no wheel tags known for platform {platform}")
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
