"""Reading requirement specs: what counts as a requirement, and the normalised form the hash covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from envtiers.errors import EXIT_BAD_INPUT, SpecError
from envtiers.spec import read_spec


def spec_file(tmp_path: Path, text: str, name: str = "requirements.in") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_requirements_and_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "# header\n\npurepkg>=1  # why\n  platpkg ; sys_platform == 'linux'\n")

    spec = read_spec(path)

    assert [str(r) for r in spec.requirements] == ["purepkg>=1", 'platpkg; sys_platform == "linux"']
    assert spec.path == path


def test_normalised_form_ignores_comments_order_whitespace_and_name_spelling(tmp_path: Path) -> None:
    first = read_spec(spec_file(tmp_path, "purepkg>=1,<3\nplatpkg[b,a]\nmarkerpkg; sys_platform=='linux'\n", "a.in"))
    second = read_spec(
        spec_file(
            tmp_path,
            "# the same requirements, reordered and respelled\n\n"
            "  MarkerPkg ;sys_platform == 'linux'   # only linux\n"
            "PlatPkg[A, b]\n"
            "purepkg <3, >=1\n",
            "b.in",
        )
    )

    assert first.normalised() == second.normalised()
    assert first.normalised() == ['markerpkg; sys_platform == "linux"', "platpkg[a,b]", "purepkg<3,>=1"]


def test_normalised_form_changes_with_a_constraint(tmp_path: Path) -> None:
    loose = read_spec(spec_file(tmp_path, "purepkg\n", "a.in"))
    tight = read_spec(spec_file(tmp_path, "purepkg<2\n", "b.in"))

    assert loose.normalised() != tight.normalised()


@pytest.mark.parametrize(
    "line", ["-r other.in", "--index-url https://example.com/simple", "-e .", "--hash=sha256:abc", "-c constraints.txt"]
)
def test_option_lines_are_refused(tmp_path: Path, line: str) -> None:
    path = spec_file(tmp_path, f"purepkg\n{line}\n")

    with pytest.raises(SpecError, match=r"shown\.in:2: options like '-") as info:
        read_spec(path, display="shown.in")
    assert "envs/tiers.toml" in (info.value.fix or "")
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_invalid_requirement_names_file_and_line_in_one_line(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "purepkg\n\npurepkg==bad!!\n")

    with pytest.raises(SpecError) as info:
        read_spec(path, display="envs/requirements.in")

    assert info.value.headline.startswith("envs/requirements.in:3: not a valid requirement: 'purepkg==bad!!'")
    assert "\n" not in info.value.headline


def test_direct_url_requirements_are_refused(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "purepkg @ https://example.com/purepkg-1.0-py3-none-any.whl\n")

    with pytest.raises(SpecError, match="direct URL requirements cannot be locked for other platforms"):
        read_spec(path)


def test_missing_spec_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^envs/requirements\.in not found$"):
        read_spec(tmp_path / "absent.in", display="envs/requirements.in")


def test_empty_spec_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "# nothing yet\n")

    with pytest.raises(SpecError, match="lists no requirements"):
        read_spec(path)
    assert read_spec(path, allow_empty=True).requirements == ()
