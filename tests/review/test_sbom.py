"""envtiers sbom: CycloneDX 1.6 JSON from the lock alone, validated by cyclonedx-python-lib's validator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from envtiers.review.sbom import sbom
from envtiers.settings import Project
from tests.conda.conftest import CondaProjectFactory
from tests.support import run_cli

BASE = "python:3.11-slim@sha256:" + "ab" * 32


def _valid(text: str) -> dict[str, object]:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    data: dict[str, object] = json.loads(text)
    assert data["bomFormat"] == "CycloneDX" and data["specVersion"] == "1.6"
    return data


def test_pip_sbom(locked_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _valid(sbom(locked_project, tier="pip", platform="linux-64"))
    components = {c["purl"]: c for c in data["components"]}  # type: ignore[attr-defined]
    assert set(components) == {
        "pkg:pypi/purepkg@2.0",
        "pkg:pypi/platpkg@1.0",
        "pkg:pypi/markerpkg@1.0",
        "pkg:pypi/linuxdep@1.0",
    }
    platpkg = components["pkg:pypi/platpkg@1.0"]["hashes"]
    assert len(platpkg) == 2 and all(h["alg"] == "SHA-256" and len(h["content"]) == 64 for h in platpkg)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # then the same lock gives the same bytes
    again = sbom(locked_project, tier="pip", platform="linux-64")
    assert again == sbom(locked_project, tier="pip", platform="linux-64") and "2023-11-14T22:13:20" in again


def test_image_sbom_names_the_base_by_digest(locked_project: Project, tmp_path: Path) -> None:
    (locked_project.root / "docker").mkdir()
    (locked_project.root / "docker" / "Dockerfile").write_text(f"ARG BASE_IMAGE={BASE}\nFROM ${{BASE_IMAGE}}\n")
    out = tmp_path / "image.cdx.json"
    result = run_cli(locked_project.root, "sbom", "--tier", "image", "--output", str(out))
    assert result.returncode == 0, result.stderr
    data = _valid(out.read_text())
    assert data["metadata"]["component"]["type"] == "container"  # type: ignore[index]
    base = data["components"][0]  # type: ignore[index]
    assert base["type"] == "container" and base["version"] == "sha256:" + "ab" * 32
    assert base["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert "pkg:pypi/linuxdep@1.0" in {c.get("purl") for c in data["components"]}  # type: ignore[attr-defined]


def test_conda_sbom(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    data = _valid(sbom(project, tier="conda", platform="linux-64"))
    purls = [c["purl"] for c in data["components"]]  # type: ignore[attr-defined]
    python = next(p for p in purls if p.startswith("pkg:conda/python@"))
    assert "subdir=linux-64" in python and "channel=conda-forge" in python and "build=" in python
    assert "pkg:pypi/purepkg@2.0" in purls
    conda_python = next(c for c in data["components"] if c["purl"] == python)  # type: ignore[attr-defined]
    assert {h["alg"] for h in conda_python["hashes"]} == {"MD5", "SHA-256"}


def test_unlocked_platform_is_bad_input(locked_project: Project) -> None:
    result = run_cli(locked_project.root, "sbom", "--tier", "pip", "--platform", "osx-64")
    assert result.returncode == 2 and "fix:" in result.stderr
    with pytest.raises(Exception, match="image tier is linux-64 only"):
        sbom(locked_project, tier="image", platform="osx-arm64")
