"""The command line, run as a user runs it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from envtiers import __version__
from envtiers.pip.environment import create
from envtiers.pip.locker import runtime_lock_path
from envtiers.platforms import host_platform_name
from envtiers.settings import Project
from tests.support import PackageIndex, closed_port_url, run_cli, write_project

ProjectFactory = Callable[..., Project]


def assert_one_error(result: subprocess.CompletedProcess[str], headline: str) -> None:
    """stderr ends with `envtiers: error: <headline...>` and its `fix:` line, and holds no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("envtiers: error:")]
    assert len(starts) == 1, result.stderr
    error, *rest = lines[starts[0] :]
    assert error.startswith(f"envtiers: error: {headline}"), result.stderr
    assert len(rest) <= 1 and all(line.startswith("  fix: ") for line in rest), result.stderr


def written_files(root: Path) -> list[str]:
    """What a command left under lockfiles/, apart from the lock file that serialises runs."""
    folder = root / "lockfiles"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".envtiers-lock")


def test_version() -> None:
    result = run_cli(None, "--version")

    assert (result.returncode, result.stdout.strip()) == (0, f"envtiers {__version__}")


def test_lock_then_check(make_project: ProjectFactory) -> None:
    project = make_project()

    locked = run_cli(project.root, "lock")
    again = run_cli(project.root, "lock")
    checked = run_cli(project.root, "check")

    assert locked.returncode == 0, locked.stderr
    assert locked.stderr.splitlines()[-1] == "2 lockfile(s) written, 0 up to date"
    assert again.stderr.splitlines() == [
        "lockfiles/pip/linux-64.txt: up to date",
        "lockfiles/pip/osx-arm64.txt: up to date",
        "0 lockfile(s) written, 2 up to date",
    ]
    assert (checked.returncode, checked.stdout) == (0, "2 lockfile(s) consistent\n")
    assert written_files(project.root) == ["pip", "pip/linux-64.txt", "pip/osx-arm64.txt"]


def test_verbose_logs_the_uv_commands(make_project: ProjectFactory) -> None:
    project = make_project("purepkg\n")

    result = run_cli(project.root, "-v", "lock", "--platform", "osx-arm64")

    assert result.returncode == 0, result.stderr
    assert "pip compile envs/requirements.in" in result.stderr
    assert "--python-platform aarch64-apple-darwin" in result.stderr


def test_sdist_only_package_fails_with_exit_2_and_writes_nothing(make_project: ProjectFactory) -> None:
    project = make_project("purepkg\nsdistonly\n")

    result = run_cli(project.root, "lock")

    assert result.returncode == 2
    assert_one_error(result, "sdistonly has no wheel for linux-64, and cross-platform locks are wheel-only")
    assert result.stderr.splitlines()[-1].startswith("  fix: constrain sdistonly in envs/requirements.in")
    assert written_files(project.root) == []


def _spec(text: str | None) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        spec = root / "envs" / "requirements.in"
        if text is None:
            spec.unlink()
        else:
            spec.write_text(text)

    return apply


def _settings(text: str | None) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        settings = root / "envs" / "tiers.toml"
        if text is None:
            settings.unlink()
        else:
            settings.write_text(text)

    return apply


def _unreachable_index(root: Path) -> None:
    write_project(root, requirements="purepkg\n", index_url=closed_port_url())


@pytest.mark.parametrize(
    ("breakage", "exit_code", "headline"),
    [
        (_spec(None), 2, "envs/requirements.in not found"),
        (_spec("purepkg\npurepkg==bad!!\n"), 2, "envs/requirements.in:2: not a valid requirement: 'purepkg==bad!!'"),
        (_spec("purepkg===bad!!\n"), 2, "uv cannot parse a requirement in envs/requirements.in"),
        (_spec("--index-url http://example.com\npurepkg\n"), 2, "envs/requirements.in:1: options like '--index-url'"),
        (_spec("doesnotexist\n"), 2, "doesnotexist was not found on the package index (locking for linux-64)"),
        (_spec("purepkg>=3\n"), 2, "the requirements cannot be satisfied together for linux-64: Because only"),
        (_unreachable_index, 1, "the package index could not be reached while locking for linux-64"),
        (_settings(None), 2, "envs/tiers.toml not found in"),
        (_settings("[project\npython = '3.11'\n"), 2, "envs/tiers.toml is not valid TOML"),
        (_settings('[project]\nplatforms = ["win-64"]\n'), 2, "envs/tiers.toml: unknown platform(s) ['win-64']"),
    ],
    ids=[
        "missing-spec",
        "malformed-requirement",
        "requirement-uv-cannot-parse",
        "option-in-spec",
        "unknown-package",
        "unsatisfiable",
        "unreachable-index",
        "missing-settings",
        "malformed-settings",
        "unknown-platform",
    ],
)
def test_bad_input_fails_cleanly_and_writes_nothing(
    make_project: ProjectFactory,
    monkeypatch: pytest.MonkeyPatch,
    breakage: Callable[[Path], None],
    exit_code: int,
    headline: str,
) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # an unreachable index fails at once
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "5")
    root = make_project("purepkg\n").root
    breakage(root)

    result = run_cli(root, "lock", timeout=60)

    assert result.returncode == exit_code, result.stderr
    assert_one_error(result, headline)
    assert written_files(root) == []


def test_failure_leaves_the_committed_locks_as_they_were(make_project: ProjectFactory) -> None:
    project = make_project("purepkg\n")
    assert run_cli(project.root, "lock").returncode == 0
    before = {path: path.read_bytes() for path in project.pip_lock_dir.glob("*.txt")}
    project.pip.spec.write_text("purepkg\nlinuxonly\n")

    result = run_cli(project.root, "lock")

    assert result.returncode == 2
    assert_one_error(result, "linuxonly has no wheel for osx-arm64")
    assert {path: path.read_bytes() for path in project.pip_lock_dir.glob("*.txt")} == before
    assert written_files(project.root) == ["pip", "pip/linux-64.txt", "pip/osx-arm64.txt"]


def test_index_url_option_and_environment_override_the_settings(
    make_project: ProjectFactory, package_index: PackageIndex
) -> None:
    project = make_project("purepkg\n", index_url=closed_port_url())

    by_option = run_cli(project.root, "--index-url", package_index.url, "lock", "--platform", "linux-64")
    by_environment = run_cli(project.root, "lock", "--force", env={"ENVTIERS_INDEX_URL": package_index.url})

    assert by_option.returncode == 0, by_option.stderr
    assert by_environment.returncode == 0, by_environment.stderr
    assert by_environment.stderr.splitlines()[-1] == "2 lockfile(s) written, 0 up to date"


@pytest.mark.parametrize(
    ("args", "headline"),
    [
        (["lock", "--platform", "win-64"], "unknown platform 'win-64'"),
        (["lock", "--platform", "linux-aarch64"], "linux-aarch64 is not a target platform of this project"),
    ],
)
def test_bad_platform_option_is_exit_2(make_project: ProjectFactory, args: list[str], headline: str) -> None:
    project = make_project("purepkg\n")

    result = run_cli(project.root, *args)

    assert result.returncode == 2
    assert_one_error(result, headline)


def test_check_lists_every_problem_and_exits_1(locked_project: Project) -> None:
    locked_project.pip.spec.write_text("purepkg<2\n")

    result = run_cli(locked_project.root, "check")

    assert result.returncode == 1
    stale = "stale: locked from different inputs than the current envs/requirements.in or envs/tiers.toml"
    assert result.stdout.splitlines() == [
        f"lockfiles/pip/linux-64.txt: {stale}",
        "  fix: run `make lock`",
        "lockfiles/pip/linux-64.txt: purepkg==2.0 does not satisfy purepkg<2 from envs/requirements.in",
        "  fix: run `make lock`",
        f"lockfiles/pip/osx-arm64.txt: {stale}",
        "  fix: run `make lock`",
        "lockfiles/pip/osx-arm64.txt: purepkg==2.0 does not satisfy purepkg<2 from envs/requirements.in",
        "  fix: run `make lock`",
        "4 problem(s) in 2 lockfile(s)",
    ]


def test_check_of_an_unknown_format_exits_2(locked_project: Project) -> None:
    path = runtime_lock_path(locked_project, "osx-arm64")
    path.write_text(path.read_text().replace("# format-version: 1", "# format-version: 99"))

    result = run_cli(locked_project.root, "check")

    assert result.returncode == 2
    assert result.stdout.splitlines()[0] == (
        "lockfiles/pip/osx-arm64.txt: has format version 99; this envtiers reads version 1"
    )
    assert "Traceback" not in result.stderr


def test_check_with_an_unusable_spec_is_exit_2(locked_project: Project) -> None:
    locked_project.pip.spec.write_text("-r other.in\n")

    result = run_cli(locked_project.root, "check")

    assert result.returncode == 2
    assert_one_error(result, "envs/requirements.in:1: options like '-r' are not allowed in a spec")


@pytest.mark.skipif(host_platform_name() not in ("linux-64", "osx-arm64"), reason="no test wheels for this host")
def test_env_path_and_env_create_print_the_same_interpreter(locked_project: Project) -> None:
    path_before = run_cli(locked_project.root, "env", "path")
    created = run_cli(locked_project.root, "env", "create")
    reused = run_cli(locked_project.root, "env", "create")
    library = create(locked_project)

    assert created.returncode == 0, created.stderr
    assert created.stdout == path_before.stdout == reused.stdout == f"{library.python}\n"
    assert created.stderr.startswith("created ")
    assert reused.stderr == f"reused {library.prefix}\n"
    assert not library.created


def test_env_create_for_another_platform_is_exit_2(locked_project: Project) -> None:
    other = "osx-arm64" if host_platform_name() == "linux-64" else "linux-64"

    result = run_cli(locked_project.root, "env", "create", "--platform", other)

    assert result.returncode == 2
    assert_one_error(result, f"cannot build a {other} environment on this {host_platform_name()} host")


def test_env_path_without_a_lock_is_an_error(make_project: ProjectFactory) -> None:
    project = make_project("purepkg\n")

    result = run_cli(project.root, "env", "path")

    assert result.returncode == 1
    assert_one_error(result, f"lockfiles/pip/{host_platform_name()}.txt does not exist")
