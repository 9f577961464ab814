"""Content-addressed environments: built once under a lock, trusted only with a valid marker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envtiers import envcache


class Builder:
    """A real build function: writes the interpreter stub `is_complete` looks for, and counts calls."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, prefix: Path) -> None:
        self.calls += 1
        assert not prefix.exists(), "ensure() must hand the builder an empty prefix"
        envcache.python_in(prefix).parent.mkdir(parents=True)
        envcache.python_in(prefix).write_text("#!/bin/sh\n")
        if self.fail:
            raise RuntimeError("install failed half-way")


def ensure(tmp_path: Path, build: Builder, key: str = "sha256:one") -> envcache.EnvInfo:
    return envcache.ensure(
        tier="pip", key=key, prefix=tmp_path / "env", build=build, lock_dir=tmp_path / "locks", details={"why": "test"}
    )


def test_builds_once_then_reuses(tmp_path: Path) -> None:
    build = Builder()

    first = ensure(tmp_path, build)
    second = ensure(tmp_path, build)

    assert (first.created, second.created, build.calls) == (True, False, 1)
    marker = json.loads((tmp_path / "env" / envcache.MARKER).read_text())
    assert {k: marker[k] for k in ("format-version", "tier", "key", "why")} == {
        "format-version": 1,
        "tier": "pip",
        "key": "sha256:one",
        "why": "test",
    }


def test_failed_build_is_left_unmarked_and_rebuilt_next_time(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="half-way"):
        ensure(tmp_path, Builder(fail=True))

    assert envcache.python_in(tmp_path / "env").exists()
    assert not envcache.is_complete(tmp_path / "env", "sha256:one")
    build = Builder()
    assert ensure(tmp_path, build).created
    assert build.calls == 1


def test_another_key_rebuilds_the_same_prefix(tmp_path: Path) -> None:
    ensure(tmp_path, Builder(), key="sha256:one")

    info = ensure(tmp_path, Builder(), key="sha256:two")

    assert info.created
    assert envcache.is_complete(tmp_path / "env", "sha256:two")
    assert not envcache.is_complete(tmp_path / "env", "sha256:one")


@pytest.mark.parametrize("text", ["", "[]", '{"format-version": 2, "key": "sha256:one"}', "{not json"])
def test_unreadable_or_unknown_markers_are_not_trusted(tmp_path: Path, text: str) -> None:
    ensure(tmp_path, Builder())
    (tmp_path / "env" / envcache.MARKER).write_text(text)

    assert envcache.read_marker(tmp_path / "env") is None
    assert ensure(tmp_path, Builder()).created


def test_marker_without_an_interpreter_is_not_complete(tmp_path: Path) -> None:
    ensure(tmp_path, Builder())
    envcache.python_in(tmp_path / "env").unlink()

    assert not envcache.is_complete(tmp_path / "env", "sha256:one")


def test_remove_drops_folders_and_links(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "bin").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(folder)

    envcache.remove(link)
    envcache.remove(folder)

    assert not link.exists() and not link.is_symlink()
    assert not folder.exists()
