"""Giving a test project a conda tier: environment.yml and [conda] settings with a mirror."""

from __future__ import annotations

from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "conda-forge-snapshot"
ENVIRONMENT = "channels:\n  - conda-forge\ndependencies:\n  - python 3.11.*\n  - pip\n  - condapkg\n"
VIRTUAL = (
    "[conda.virtual_packages]\n"
    'linux-64 = { __glibc = "2.28", __unix = "0", __linux = "0" }\n'
    'osx-arm64 = { __osx = "13.0", __unix = "0" }\n'
)


def add_conda_tier(root: Path, *, mirror: str | None, environment: str = ENVIRONMENT) -> None:
    """Write envs/environment.yml and append [conda] to envs/tiers.toml; `mirror` stands in for
    conda-forge (None: no mirror, the channels are read as written)."""
    text = '\n[conda]\nenvironment = "environment.yml"\n' + VIRTUAL
    if mirror is not None:
        text += f'\n[conda.mirrors]\nconda-forge = "{mirror}"\n'
    settings = root / "envs" / "tiers.toml"
    settings.write_text(settings.read_text() + text)
    (root / "envs" / "environment.yml").write_text(environment)
