"""The review commands' reading of the conda lock: through envtiers' strict reader (the one `check` and
the installers use), which sees what conda-lock's own parser sees, and refuses what it cannot vouch for."""

from __future__ import annotations

import pytest
from packaging.utils import canonicalize_name

from envtiers.errors import LockfileFormatError
from envtiers.review import locked
from tests.conda.conftest import CondaProjectFactory


def test_the_review_reads_what_conda_lock_reads(make_conda_project: CondaProjectFactory) -> None:
    from conda_lock.lockfile import parse_conda_lock_file

    project = make_conda_project()
    path = project.lockfiles_dir / "conda-lock.yml"
    sets = {s.platform: s for s in locked.load_locked(project, tiers=["conda"]).sets}
    theirs = parse_conda_lock_file(path)
    assert sorted(sets) == sorted(theirs.metadata.platforms)
    for platform, locked_set in sets.items():
        ours = {(p.name, p.version, p.url, p.sha256[0]) for p in locked_set.packages}
        expected = {
            (canonicalize_name(d.name) if d.manager == "pip" else d.name, d.version, d.url, d.hash.sha256)
            for d in theirs.package
            if d.platform == platform
        }
        assert ours == expected
    assert {p.name for p in sets["linux-64"].packages} >= {"python", "condapkg", "purepkg"}


def test_a_lock_envtiers_did_not_write_is_refused(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    path = project.lockfiles_dir / "conda-lock.yml"
    path.write_text(path.read_text().replace("envtiers-format-version", "someone-elses-key"))
    with pytest.raises(LockfileFormatError, match="not written by envtiers"):
        locked.load_locked(project, tiers=["conda"])
