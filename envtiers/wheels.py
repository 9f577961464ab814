"""The exact wheel each pip pin installs on a platform: read from the index's simple API.

The pip tier's lock holds versions and the hashes of every file of that version; the conda lock,
the image's wheelhouse, the files shipped through the datastore and the review's sizes need one
file per package and platform. This module asks the index (PEP 691 JSON, or PEP 503 HTML) for the
files of each pinned version, keeps those whose sha256 is in the lock, and picks the one whose tags
rank highest for the platform and interpreter (as an installer would). The platform's tags are
derived once, from the declared `__glibc` / `__osx` ([conda.virtual_packages], else the floors in
`envtiers.platforms`). The index itself is read by `envtiers.index` (the one client of the package
index's simple API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from packaging import tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from envtiers.errors import ResolutionError
from envtiers.index import IndexFile, SimpleIndex
from envtiers.platforms import GLIBC_FLOOR, MACOS_FLOOR, platform_tag_names

if TYPE_CHECKING:
    from envtiers.pip.lockfile import Pin
    from envtiers.settings import Project

__all__ = ["IndexFile", "SimpleIndex", "choose", "declared_virtual", "locked_wheels", "ranking", "supported_tags"]


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


def declared_virtual(project: Project, platform: str) -> dict[str, str]:
    """The virtual packages the project declares for `platform` ([conda.virtual_packages], with
    the floors as defaults): their `__glibc` / `__osx` bound the wheel tags of every tier."""
    from envtiers.conda.spec import load_settings

    return dict(load_settings(project).virtual_packages.get(platform, {}))


def ranking(platform: str, python: str, virtual: Mapping[str, str]) -> dict[tags.Tag, int]:
    """Each tag `supported_tags` accepts, with its rank (0 = best)."""
    return {tag: rank for rank, tag in enumerate(supported_tags(platform, python, virtual))}


def locked_wheels(
    pins: Sequence[Pin], *, index: SimpleIndex, platform: str, python: str, virtual: Mapping[str, str], fix: str
) -> list[IndexFile]:
    """The wheel each pin installs on `platform`, one file per pin, in the pins' order.

    Pages are fetched concurrently; a cached page is used first (a file's sha256 names it for good)
    and asked for again only when it lacks the locked file. Raises ResolutionError (with `fix`) for
    a pin with no locked wheel that fits.
    """
    ranks = ranking(platform, python, virtual)
    index.prefetch((pin.name for pin in pins), cached=True)
    chosen: list[IndexFile] = []
    for pin in pins:
        hashes = {digest.removeprefix("sha256:") for digest in pin.hashes}
        found = choose(index.files(pin.name, cached=True), hashes=hashes, ranking=ranks)
        if found is None:
            found = choose(index.refresh(pin.name), hashes=hashes, ranking=ranks)
        if found is None:
            raise ResolutionError(
                f"no wheel of {pin.name}=={pin.version} in the lock fits {platform} with Python {python}", fix=fix
            )
        chosen.append(found)
    return chosen
