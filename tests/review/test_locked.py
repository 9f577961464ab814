"""The review commands' reading of the conda lock: libyaml's fast path equals conda-lock's parser, and
anything unusual goes to conda-lock's parser, which refuses it with its message."""

from __future__ import annotations

import pytest

from envtiers.errors import LockfileFormatError
from envtiers.review import locked
from tests.conda.conftest import CondaProjectFactory


def test_fast_path_reads_what_conda_lock_reads(
    make_conda_project: CondaProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_conda_project()
    fast = locked.load_locked(project, tiers=["conda"]).sets
    rows, _ = locked._fast_conda_rows(project.lockfiles_dir / "conda-lock.yml")
    assert rows is not None  # the fast path was taken
    monkeypatch.setattr(locked, "_fast_conda_rows", lambda path: (None, []))
    assert locked.load_locked(project, tiers=["conda"]).sets == fast
    assert {p.name for p in fast[0].packages} >= {"python", "condapkg", "purepkg"}


def test_a_lock_envtiers_did_not_write_is_refused(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    path = project.lockfiles_dir / "conda-lock.yml"
    path.write_text(path.read_text().replace("envtiers-format-version", "someone-elses-key"))
    assert locked._fast_conda_rows(path) == (None, [])
    with pytest.raises(LockfileFormatError, match="not written by envtiers"):
        locked.load_locked(project, tiers=["conda"])
