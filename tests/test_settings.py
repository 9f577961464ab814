"""Project settings: envs/tiers.toml, its defaults, and the option > environment > file order."""

from __future__ import annotations

from pathlib import Path

import pytest

from envtiers.errors import SettingsError
from envtiers.settings import find_root, load_project
from tests.support import write_project


def test_loads_the_written_settings(tmp_path: Path) -> None:
    root = write_project(tmp_path, requirements="purepkg\n", index_url="http://127.0.0.1:1/simple")

    project = load_project(root, cache_dir=tmp_path / "cache")

    assert project.root == tmp_path.resolve()
    assert project.python == "3.11"
    assert project.platforms == ("linux-64", "osx-arm64")
    assert project.pip.spec == tmp_path.resolve() / "envs" / "requirements.in"
    assert project.pip.index_url == "http://127.0.0.1:1/simple"
    assert project.cache_dir == tmp_path / "cache"
    assert project.pip_lock_dir == tmp_path.resolve() / "lockfiles" / "pip"


def test_optional_specs_count_only_when_their_file_exists(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "tiers.toml").write_text('[project]\npython = "3.11"\n')  # defaults name all three files
    (envs / "requirements.in").write_text("purepkg\n")
    (envs / "tools.in").write_text("uv\n")

    pip = load_project(tmp_path).pip

    assert (pip.overrides, pip.dev_spec) == (None, None)
    assert pip.tools_spec == tmp_path.resolve() / "envs" / "tools.in"


def test_index_url_option_beats_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path, requirements="purepkg\n", index_url="http://file/simple")

    assert load_project(root).pip.index_url == "http://file/simple"
    monkeypatch.setenv("ENVTIERS_INDEX_URL", "http://env/simple")
    assert load_project(root).pip.index_url == "http://env/simple"
    assert load_project(root, index_url="http://option/simple").pip.index_url == "http://option/simple"


def test_cache_dir_comes_from_the_environment_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "project", requirements="purepkg\n", index_url=None)
    monkeypatch.setenv("ENVTIERS_CACHE_DIR", str(tmp_path / "elsewhere"))

    assert load_project(root).cache_dir == (tmp_path / "elsewhere").resolve()


def test_root_is_found_from_a_subfolder_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "project", requirements="purepkg\n", index_url=None)
    deep = root / "a" / "b"
    deep.mkdir(parents=True)

    assert find_root(deep) == root.resolve()
    monkeypatch.setenv("ENVTIERS_PROJECT", str(root))
    assert find_root(tmp_path) == root.resolve()


def test_no_settings_above_the_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"no envs/tiers\.toml found"):
        find_root(tmp_path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[project\npython = 3.11\n", "is not valid TOML"),
        ('[project]\npython = "three"\n', "project.python must look like '3.11', got 'three'"),
        ('[project]\nplatforms = ["win-64"]\n', r"unknown platform\(s\) \['win-64'\]"),
        ("[project]\nplatforms = []\n", r"unknown platform\(s\) \(none listed\)"),
        ('pip = "not a table"\n', r"\[pip\] must be a table"),
    ],
    ids=["malformed-toml", "bad-python", "unknown-platform", "no-platform", "pip-not-a-table"],
)
def test_bad_settings_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "tiers.toml").write_text(toml)

    with pytest.raises(SettingsError, match=message):
        load_project(tmp_path)


def test_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"envs/tiers\.toml not found in"):
        load_project(tmp_path)
