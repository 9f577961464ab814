"""What `envtiers init` reads and writes, without installing anything (the library, in-process)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from envtiers.errors import InputError
from envtiers.pip.link import link_project
from envtiers.scaffold.imports import read_lock
from envtiers.scaffold.init import import_preferences, init
from envtiers.scaffold.render import CONDA_TOOLS_SPEC, TOOLS_SPEC, template
from envtiers.scaffold.writer import ConflictError
from envtiers.settings import load_project
from tests.support import REPO_ROOT, snapshot


def test_the_repository_makefile_includes_the_file_init_writes(tmp_path: Path) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "include envtiers/scaffold/templates/envtiers.mk" in makefile
    init(tmp_path)
    assert (tmp_path / "envtiers.mk").read_text() == (REPO_ROOT / "envtiers/scaffold/templates/envtiers.mk").read_text()
    # Its targets are the ones the issue names, and the Makefile defines none of them again.
    for target in ("lock", "check", "image", "run", "env", "resume"):
        assert re.search(rf"^{target}:", template("envtiers.mk"), re.MULTILINE)
        assert not re.search(rf"^{target}:", makefile, re.MULTILINE)


def test_make_runs_the_included_targets(tmp_path: Path) -> None:
    init(tmp_path)
    (tmp_path / "flow.py").write_text("")
    done = subprocess.run(["make", "-n", "run", "TIER=conda", "check"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "python flow.py --environment=envtiers-conda run" in done.stdout
    assert "envtiers check" in done.stdout


def test_tools_spec_is_the_wheels_dependencies() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert sorted(TOOLS_SPEC) == sorted(pyproject["project"]["dependencies"])
    assert list(CONDA_TOOLS_SPEC) == pyproject["project"]["optional-dependencies"]["conda"]


def test_pyproject_optional_groups_environment_yml_and_python(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "t"\nversion = "1"\ndependencies = ["purepkg>=1", "metaflow"]\n'
        '[project.optional-dependencies]\nviz = ["markerpkg"]\ndev = ["pytest"]\n'
    )
    (tmp_path / "environment.yml").write_text(
        "channels: [conda-forge, defaults]\ndependencies:\n  - python=3.12\n  - libgdal\n  - pip:\n    - platpkg\n"
    )
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    result = init(tmp_path, extras=["viz"], platforms=["linux-64", "linux-aarch64"])
    spec = (tmp_path / "envs" / "requirements.in").read_text().splitlines()
    assert [line for line in spec if not line.startswith("#")] == ["purepkg>=1", "metaflow", "markerpkg", "platpkg"]
    assert result.tiers == ("pip", "image", "conda")  # it had an environment.yml
    environment = (tmp_path / "envs" / "environment.yml").read_text()
    assert "  - python 3.12.*\n  - pip\n  - libgdal\n" in environment and "defaults" not in environment
    project = load_project(tmp_path)
    assert project.python == "3.12" and project.platforms == ("linux-64", "linux-aarch64")
    assert project.raw["flow"]["include"] == ["pkg"]
    assert "COPY pkg /opt/envtiers/app/pkg" in (tmp_path / "docker" / "Dockerfile").read_text()
    assert "!pkg/" in (tmp_path / ".dockerignore").read_text()
    assert "envtiers[conda]==" in (tmp_path / ".github" / "workflows" / "envtiers.yml").read_text()
    assert "py-rattler" in (tmp_path / "envs" / "tools.in").read_text()  # what a remote conda task installs first
    assert any("dev" in hint for hint in result.hints)


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("purepkg\n./local/path\n")
    with pytest.raises(InputError, match=r"requirements.txt:2"):
        init(tmp_path)
    (tmp_path / "requirements.txt").write_text("purepkg\n")
    with pytest.raises(InputError, match="unknown platform"):
        init(tmp_path, platforms=["win-64"])
    with pytest.raises(InputError, match="no optional group"):
        init(tmp_path, extras=["viz"])
    assert not (tmp_path / "envs").exists()


def test_an_existing_makefile_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n\techo hi\n")
    result = init(tmp_path)
    assert (tmp_path / "Makefile").read_text() == "all:\n\techo hi\n"
    assert any("include envtiers.mk" in hint for hint in result.hints)
    assert init(tmp_path).changes == [c.__class__(c.path, "unchanged") for c in result.changes]


def test_conflicts_write_nothing(tmp_path: Path) -> None:
    init(tmp_path)
    (tmp_path / "docker" / "Dockerfile").write_text("FROM mine\n")
    (tmp_path / "envs" / "tools.in").unlink()
    before = snapshot(tmp_path)
    with pytest.raises(ConflictError) as caught:
        init(tmp_path)
    assert "-FROM mine" in caught.value.render()
    assert snapshot(tmp_path) == before  # not even the missing envs/tools.in was written


def test_pinned_requirements_are_preferences_not_the_spec(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\nversion = "1"\ndependencies = ["purepkg"]\n')
    (tmp_path / "requirements.txt").write_text("purepkg==1.0 \\\n    --hash=sha256:00\nmarkerpkg==1.0\n")
    result = init(tmp_path)
    assert result.imported is not None and result.imported.pins == {"purepkg": "1.0", "markerpkg": "1.0"}
    spec = (tmp_path / "envs" / "requirements.in").read_text()
    assert "purepkg\n" in spec and "==" not in spec


def test_conda_lock_import_takes_the_platform_and_prefers_pip_entries(tmp_path: Path) -> None:
    path = tmp_path / "conda-lock.yml"
    path.write_text(
        textwrap.dedent(
            """
            version: 1
            metadata: {}
            package:
              - {name: python, version: 3.11.9, manager: conda, platform: linux-64}
              - {name: numpy, version: 1.26.4, manager: conda, platform: linux-64}
              - {name: numpy, version: 1.26.0, manager: conda, platform: osx-arm64}
              - {name: Requests, version: 2.31.0, manager: conda, platform: linux-64}
              - {name: requests, version: 2.32.3, manager: pip, platform: linux-64}
              - {name: openssl, version: 3.3.1_x, manager: conda, platform: linux-64}
            """
        )
    )
    assert read_lock(path, display="conda-lock.yml").pins == {"numpy": "1.26.4", "requests": "2.32.3"}


def test_uv_lock_import_skips_the_project_and_forked_packages(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(
        'version = 1\n[[package]]\nname = "team"\nversion = "0.1"\nsource = { virtual = "." }\n'
        '[[package]]\nname = "purepkg"\nversion = "1.0"\nsource = { registry = "x" }\n'
        '[[package]]\nname = "numpy"\nversion = "1.0"\n[[package]]\nname = "numpy"\nversion = "2.0"\n'
    )
    assert read_lock(path, display="uv.lock").pins == {"purepkg": "1.0"}


def test_link_project_writes_console_scripts(tmp_path: Path) -> None:
    """What `make venv` does to .venv: `envtiers` runs the source tree from the venv's bin/."""
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    (scripts,) = link_project(prefix, REPO_ROOT)
    assert scripts == prefix / "bin" / "envtiers"
    done = subprocess.run([str(scripts), "--version"], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("envtiers ")
    assert link_project(prefix, REPO_ROOT) == [scripts]  # idempotent


def test_the_test_venv_has_the_envtiers_command() -> None:
    """`make test` runs in .venv, built by `make venv`: its bin/ has a working `envtiers`."""
    script = Path(sys.prefix) / "bin" / "envtiers"
    if Path(sys.prefix) != REPO_ROOT / ".venv":
        pytest.skip(f"not running in this checkout's .venv ({sys.prefix})")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("envtiers ")


def test_import_writes_preferences_and_refuses_to_replace_others(tmp_path: Path) -> None:
    init(tmp_path)
    pinned = tmp_path / "frozen.txt"
    pinned.write_text("purepkg==1.0\n")
    imported, changes = import_preferences(tmp_path, pinned)
    assert imported.pins == {"purepkg": "1.0"} and [c.status for c in changes] == ["new"]
    assert "purepkg==1.0" in (tmp_path / "envs" / "preferences.txt").read_text()
    pinned.write_text("purepkg==2.0\n")
    with pytest.raises(ConflictError) as caught:
        import_preferences(tmp_path, pinned)
    assert "-purepkg==1.0" in caught.value.render() and "--force" in caught.value.render()
    import_preferences(tmp_path, pinned, force=True)
    assert "purepkg==2.0" in (tmp_path / "envs" / "preferences.txt").read_text()
    pinned.write_text("purepkg>=1\n")
    with pytest.raises(InputError, match="pins nothing"):
        import_preferences(tmp_path, pinned)


def test_the_written_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    from tests.image.test_dockerfile import hadolint

    (tmp_path / "teamlib").mkdir()
    (tmp_path / "teamlib" / "__init__.py").write_text("")
    init(tmp_path)
    dockerfile = tmp_path / "docker" / "Dockerfile"
    assert "COPY teamlib /opt/envtiers/app/teamlib" in dockerfile.read_text()
    done = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_written_dockerfile_starts_from_the_environment_image_as_this_repository_does() -> None:
    """Both start FROM the environment image envtiers builds (its recipe is envtiers' own), with the
    same user and marker; the rest differs (the detector's image also serves)."""

    def env_arg(text: str) -> str:
        start = text.index("# The environment image envtiers built")
        return text[start : text.index("# --- final:", start)]

    ours = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    written = template("Dockerfile")
    assert env_arg(written) == env_arg(ours)
    start = "FROM ${ENV_IMAGE}\nRUN useradd --create-home --uid 1000 --user-group --shell /bin/bash envtiers\n"
    marker = "COPY build/image/envtiers-complete.json /opt/envtiers/env/.envtiers-complete.json\n"
    for text in (ours, written):
        assert start in text and marker in text and "COPY --from" not in text
