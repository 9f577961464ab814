"""The image's wheelhouse: each locked wheel for linux-64, chosen through the one index client and
downloaded concurrently; kept when already there, refused when the index serves other bytes.
No docker needed: this is what `make image` does on the host before `docker build`."""

from __future__ import annotations

from pathlib import Path

import pytest

from envtiers.errors import DownloadMismatchError, ResolutionError
from envtiers.image import wheelhouse
from envtiers.image.spec import read_image_lock
from envtiers.index import SimpleIndex
from envtiers.pip.locker import lock
from envtiers.settings import load_project
from tests.support import PackageIndex, write_project


def fetch(project_root: Path, index_url: str, lines: list[str], index: SimpleIndex | None = None) -> Path:
    project = load_project(project_root, cache_dir=project_root / "cache")
    dest = project_root / "wheelhouse"
    wheelhouse.fetch(
        lock=read_image_lock(project),
        dest=dest,
        python_version=project.python,
        index_url=index_url,
        virtual={},
        report=lines.append,
        index=index,
    )
    return dest


def locked_root(tmp_path: Path, index: PackageIndex) -> Path:
    root = write_project(
        tmp_path / "p", requirements="purepkg\nplatpkg\n", index_url=index.url, platforms=("linux-64",)
    )
    lock(load_project(root, cache_dir=root / "cache"))
    return root


def test_the_wheelhouse_holds_each_locked_linux_wheel_once(tmp_path: Path, package_index: PackageIndex) -> None:
    root = locked_root(tmp_path, package_index)
    lines: list[str] = []
    dest = fetch(root, package_index.url, lines)
    names = sorted(p.name for p in dest.iterdir())
    assert len(names) == 2
    assert names[0].startswith("platpkg-1.0-") and "manylinux" in names[0]  # not the macOS wheel
    assert names[1].startswith("purepkg-")
    assert "2 downloaded" in lines[-1]

    (dest / "stray-1.0-py3-none-any.whl").write_bytes(b"not locked")
    again: list[str] = []
    fetch(root, package_index.url, again)
    assert sorted(p.name for p in dest.iterdir()) == names  # the unlisted file is gone
    assert "0 downloaded" in again[-1] and "2 already there" in again[-1]


def test_other_bytes_from_the_index_are_refused_and_nothing_is_left(
    tmp_path: Path, private_index: PackageIndex
) -> None:
    root = locked_root(tmp_path, private_index)
    listed = SimpleIndex(private_index.url)
    listed.prefetch(["purepkg", "platpkg"])  # the pages as they were: they list the locked sha256
    for served in private_index.files():  # then the index serves other bytes under those names
        if served.name.startswith("purepkg-") and served.name.endswith(".whl"):
            served.write_bytes(served.read_bytes() + b"tampered")
    with pytest.raises(DownloadMismatchError, match="does not have the sha256 the lock records"):
        fetch(root, private_index.url, [], index=listed)
    assert not any(p.name.startswith(("purepkg-", ".purepkg-")) for p in (root / "wheelhouse").iterdir())
    # Asked afresh, the index no longer lists the locked file at all: refused before any download.
    with pytest.raises(ResolutionError, match=r"no wheel of purepkg==\S+ in the lock fits linux-64"):
        fetch(root, private_index.url, [])
