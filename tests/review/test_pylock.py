"""envtiers export --format pylock: PEP 751, validated by packaging's reference reader, installed by uv and pip."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from envtiers.errors import InputError
from envtiers.review.pylock import export_pylock
from envtiers.settings import Project
from tests.support import REPO_ROOT, run_cli

# packaging >= 25 ships `packaging.pylock`, PyPA's reader that validates a pylock against PEP 751; the
# runtime lock pins an older packaging (TensorFlow's), envtiers' own tools carry it.
TOOLS_PYTHON = REPO_ROOT / ".tools" / "bin" / "python"
VALIDATE = (
    "import sys, tomllib; from packaging.pylock import Pylock; "
    "Pylock.from_dict(tomllib.load(open(sys.argv[1], 'rb'))).validate(); print('valid')"
)


def _bin(name: str) -> Path:
    return Path(sys.executable).parent / name


def test_pylock_is_valid_pep751_and_installs(locked_project: Project, tmp_path: Path) -> None:
    result = run_cli(locked_project.root, "export", "--format", "pylock", "--platform", "linux-64")
    assert result.returncode == 0, result.stderr
    path = locked_project.root / "pylock.linux-64.toml"
    assert result.stdout.strip() == str(path)
    data = tomllib.loads(path.read_text())
    assert data["lock-version"] == "1.0" and data["created-by"] == "envtiers" and data["requires-python"] == "==3.11.*"
    packages = {p["name"]: p for p in data["packages"]}
    assert set(packages) == {"purepkg", "platpkg", "markerpkg", "linuxdep"}
    wheel = packages["platpkg"]["wheels"]
    assert len(wheel) == 1 and wheel[0]["name"].endswith("manylinux_2_17_x86_64.whl")
    assert wheel[0]["size"] > 0 and len(wheel[0]["hashes"]["sha256"]) == 64

    if not TOOLS_PYTHON.is_file():
        pytest.skip("no .tools/ (make tools) to validate with packaging.pylock")
    check = subprocess.run([TOOLS_PYTHON, "-c", VALIDATE, str(path)], capture_output=True, text=True)
    assert check.returncode == 0 and "valid" in check.stdout, check.stderr

    for installer in ("uv", "pip"):
        venv = tmp_path / f"venv-{installer}"
        subprocess.run([_bin("uv"), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        if installer == "uv":
            command = [_bin("uv"), "pip", "sync", "--python", str(venv / "bin" / "python"), str(path)]
        else:
            subprocess.run(
                [_bin("uv"), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "pip"],
                check=True,
                env=None,
            )
            command = [venv / "bin" / "python", "-m", "pip", "install", "--no-index", "-r", str(path)]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        probe = subprocess.run(
            [venv / "bin" / "python", "-c", "import purepkg, platpkg, linuxdep; print(purepkg.__version__)"],
            capture_output=True,
            text=True,
        )
        assert probe.stdout.strip() == "2.0", installer + probe.stderr


def test_pylock_name_must_follow_pep751(locked_project: Project, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a name PEP 751 allows"):
        export_pylock(locked_project, platform="linux-64", output=tmp_path / "lock.toml")
    written = export_pylock(locked_project, platform="osx-arm64", output=tmp_path)
    assert written.name == "pylock.osx-arm64.toml"
    assert "macosx_11_0_arm64" in written.read_text()
