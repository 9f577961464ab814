"""The image spec and its content tag, on text and files only (no docker): what changes the tag
and what must not, and the settings' order (argument, environment, envs/tiers.toml, Dockerfile)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from envtiers.errors import InputError
from envtiers.image.spec import label_build_args, load_spec, render_marker
from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.image.support import add_image_files
from tests.support import PackageIndex, write_project

BASE = "registry.example.com/base@sha256:" + "ab" * 32
OTHER_BASE = "registry.example.com/base@sha256:" + "cd" * 32


@pytest.fixture
def project(tmp_path: Path, package_index: PackageIndex) -> Project:
    root = write_project(tmp_path / "p", requirements="purepkg\n", index_url=package_index.url, platforms=("linux-64",))
    add_image_files(root, registry="registry.example.com/team", base_image=BASE)
    loaded = load_project(root, cache_dir=tmp_path / "cache")
    lock(loaded)
    return loaded


def tag_after(project: Project, change: Callable[[Path], object]) -> str:
    change(project.root)
    return load_spec(load_project(project.root, cache_dir=project.cache_dir)).tag


def test_the_tag_follows_the_content(project: Project) -> None:
    tag = load_spec(project).tag
    assert load_spec(project).tag == tag  # stable
    assert tag_after(project, lambda root: (root / "envs" / "notes.txt").write_text("x")) == tag
    code = tag_after(project, lambda root: (root / "detector" / "extra.py").write_text("X = 1\n"))
    assert code != tag
    docker = tag_after(project, lambda root: (root / "docker" / "Dockerfile").open("a").write("# comment\n"))
    assert docker not in (tag, code)
    assert load_spec(project, base_image=OTHER_BASE).tag != docker


def test_a_new_lock_changes_the_tag_and_the_marker(project: Project) -> None:
    before = load_spec(project)
    (project.envs_dir / "requirements.in").write_text("purepkg==1.0\n")
    lock(project)
    after = load_spec(project)
    assert after.lock_hash != before.lock_hash and after.tag != before.tag
    assert f'"key": "{after.lock_hash}"' in render_marker(after)
    assert '"tier": "image"' in render_marker(after)


def test_labels_do_not_change_the_tag(project: Project) -> None:
    spec = load_spec(project)
    first = label_build_args(spec, source="s", revision="a" * 40, source_date_epoch=0)
    second = label_build_args(spec, source="s", revision="b" * 40, source_date_epoch=1_700_000_000)
    assert first["CREATED"] == "1970-01-01T00:00:00Z" and second["CREATED"] == "2023-11-14T22:13:20Z"
    assert load_spec(project).tag == spec.tag


def test_registry_and_base_settings_order(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_spec(project).image_name == "registry.example.com/team/tiny"
    monkeypatch.setenv("REGISTRY", "127.0.0.1:5000/ci")
    assert load_spec(project).image_name == "127.0.0.1:5000/ci/tiny"
    assert load_spec(project, registry="ghcr.io/other").image_name == "ghcr.io/other/tiny"
    monkeypatch.setenv("BASE_IMAGE", OTHER_BASE)
    assert load_spec(project).base_image == OTHER_BASE
    assert load_spec(project, base_image=BASE).base_image == BASE


def test_an_edited_lock_is_refused(project: Project) -> None:
    path = project.pip_lock_dir / "linux-64.txt"
    path.write_text(path.read_text().replace("purepkg==2.0", "purepkg==1.0"))
    with pytest.raises(InputError, match="edited after locking"):
        load_spec(project)


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://x-access-token:ghp_secret@github.com/team/repo.git", "https://github.com/team/repo.git"),
        ("https://github.com/team/repo.git", "https://github.com/team/repo.git"),
        ("git@github.com:team/repo.git", "git@github.com:team/repo.git"),
    ],
)
def test_a_token_in_the_remote_url_never_reaches_the_source_label(url: str, label: str) -> None:
    from envtiers.image.builder import _strip_credentials

    assert _strip_credentials(url) == label


def test_check_recomputes_the_tag_a_code_change_makes_the_record_stale(project: Project) -> None:
    """The record names the image by its content tag: a detector/ edit after `make image` means the
    image runs old code, and `envtiers check` (no docker) says so with the fix."""
    from envtiers.image.checker import check_image
    from envtiers.image.record import ImageRecord, record_path, write_record

    spec = load_spec(project)
    write_record(
        ImageRecord(
            repository=spec.image_name,
            tag=spec.tag,
            digest="sha256:" + "ee" * 32,
            lock_hash=spec.lock_hash,
            base_digest=spec.base_digest,
            path=record_path(project),
            base_image=spec.base_image,
            dockerfile_hash=spec.dockerfile_hash,
        )
    )
    assert check_image(project) == (["lockfiles/image.json"], [])

    (project.root / "detector" / "model.py").write_text("CHANGED = True\n")
    _, problems = check_image(project)
    assert len(problems) == 1
    assert "image is stale" in problems[0].message and "code changed" in problems[0].message
    assert "make image" in problems[0].fix
