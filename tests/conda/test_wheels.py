"""Choosing the one wheel a pip pin installs on a platform, from the files the index lists."""

from __future__ import annotations

import pytest

from envtiers.errors import ResolutionError
from envtiers.wheels import IndexFile, SimpleIndex, choose, supported_tags
from tests.support import PackageIndex

LINUX = {"__glibc": "2.28", "__unix": "0", "__linux": "0"}
MAC = {"__osx": "13.0", "__unix": "0"}


def files(*names: str) -> list[IndexFile]:
    return [IndexFile(name, f"https://files.example/{name}", f"h{index}") for index, name in enumerate(names)]


def pick(platform: str, virtual: dict[str, str], *names: str) -> str | None:
    ranking = {tag: rank for rank, tag in enumerate(supported_tags(platform, "3.11", virtual))}
    listed = files(*names)
    chosen = choose(listed, hashes={f.sha256 for f in listed if f.sha256}, ranking=ranking)
    return chosen.filename if chosen else None


def test_the_most_specific_compatible_wheel_wins() -> None:
    names = (
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "pkg-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "pkg-1.0-cp311-cp311-macosx_11_0_arm64.whl",
        "pkg-1.0.tar.gz",
    )
    assert pick("linux-64", LINUX, *names) == "pkg-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert pick("osx-arm64", MAC, *names) == "pkg-1.0-cp311-cp311-macosx_11_0_arm64.whl"


def test_the_virtual_packages_bound_the_platform_tags() -> None:
    """A wheel that needs a newer glibc or macOS than declared would not run where conda's part runs."""
    assert pick("linux-64", LINUX, "pkg-1.0-cp311-cp311-manylinux_2_34_x86_64.whl") is None
    assert pick("osx-arm64", MAC, "pkg-1.0-cp311-cp311-macosx_14_0_arm64.whl") is None
    assert pick("linux-64", LINUX, "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl") is None
    assert pick("linux-64", LINUX, "pkg-1.0-cp38-abi3-manylinux_2_17_x86_64.whl") is not None


def test_only_files_whose_hash_is_locked_are_candidates() -> None:
    ranking = {tag: rank for rank, tag in enumerate(supported_tags("linux-64", "3.11", LINUX))}
    listed = files("pkg-1.0-py3-none-any.whl", "pkg-1.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert choose(listed, hashes={"h0"}, ranking=ranking) == listed[0]
    assert choose(listed, hashes={"elsewhere"}, ranking=ranking) is None


def test_the_simple_index_client_reads_pep_503_pages(package_index: PackageIndex) -> None:
    index = SimpleIndex(package_index.url)
    listed = index.files("PurePkg")
    assert {f.filename for f in listed} >= {"purepkg-2.0-py3-none-any.whl"}
    assert all(f.url.startswith("http://127.0.0.1:") and "#" not in f.url and f.sha256 for f in listed)
    with pytest.raises(ResolutionError, match="nosuchpkg is not on the package index"):
        index.files("nosuchpkg")
