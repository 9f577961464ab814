"""`envtiers lock --tier conda` against the session's real conda channel and the local package index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envtiers.conda import lockfile, rattler
from envtiers.conda.locker import lock
from envtiers.errors import ResolutionError
from envtiers.pip import lockfile as pip_lockfile
from envtiers.pip.locker import runtime_lock_path
from tests.conda.conftest import CondaProjectFactory
from tests.conda.support import SNAPSHOT
from tests.support import run_cli, sha256_file, snapshot

CONDA_FORGE = "https://conda.anaconda.org/conda-forge/"


def lock_path(root: Path) -> Path:
    return root / "lockfiles" / "conda-lock.yml"


def test_lock_solves_both_platforms_and_records_the_channel_not_the_mirror(
    make_conda_project: CondaProjectFactory, conda_channel: Path
) -> None:
    project = make_conda_project()
    text = lock_path(project.root).read_text()
    raw = yaml.safe_load(text)

    assert raw["version"] == 1
    assert raw["metadata"]["platforms"] == ["linux-64", "osx-arm64"]
    assert set(raw["metadata"]["content_hash"]) == {"linux-64", "osx-arm64"}
    assert conda_channel.as_uri() not in text  # the mirror is where we read, never what we record
    conda = {(p["platform"], p["name"]): p for p in raw["package"] if p["manager"] == "conda"}
    assert sorted(conda) == [
        ("linux-64", "condapkg"), ("linux-64", "pip"), ("linux-64", "python"),
        ("osx-arm64", "condapkg"), ("osx-arm64", "pip"), ("osx-arm64", "python"),
    ]  # fmt: skip
    python = conda[("linux-64", "python")]
    served = conda_channel / "linux-64" / python["url"].rsplit("/", 1)[-1]
    assert python["url"] == CONDA_FORGE + "linux-64/" + served.name
    assert python["hash"]["sha256"] == sha256_file(served)
    assert conda[("osx-arm64", "python")]["url"].startswith(CONDA_FORGE + "osx-arm64/")
    assert conda[("linux-64", "pip")]["url"].startswith(CONDA_FORGE + "noarch/")


def test_pip_entries_are_the_pip_locks_pins_with_the_wheel_for_each_platform(
    make_conda_project: CondaProjectFactory,
) -> None:
    project = make_conda_project()
    raw = yaml.safe_load(lock_path(project.root).read_text())
    for platform, tag in (("linux-64", "manylinux_2_17_x86_64"), ("osx-arm64", "macosx_11_0_arm64")):
        pins = {p.name: p for p in pip_lockfile.read(runtime_lock_path(project, platform)).pins}
        entries = {p["name"]: p for p in raw["package"] if p["manager"] == "pip" and p["platform"] == platform}
        assert {n: e["version"] for n, e in entries.items()} == {n: p.version for n, p in pins.items()}
        for name, entry in entries.items():
            assert f"sha256:{entry['hash']['sha256']}" in pins[name].hashes
        assert entries["platpkg"]["url"].endswith(f"platpkg-1.0-cp311-cp311-{tag}.whl")


def test_the_lock_round_trips_through_conda_lock_and_renders_explicit(
    make_conda_project: CondaProjectFactory, tmp_path: Path
) -> None:
    from conda_lock.lockfile import parse_conda_lock_file

    project = make_conda_project()
    parsed = parse_conda_lock_file(lock_path(project.root))
    assert {p.platform for p in parsed.package} == {"linux-64", "osx-arm64"}
    assert lockfile.stored_input_hash(parsed) is not None

    out = tmp_path / "render"
    out.mkdir()
    conda_lock = Path(sys.executable).parent / "conda-lock"
    done = subprocess.run(
        [str(conda_lock), "render", "--kind", "explicit", "-p", "linux-64", str(lock_path(project.root))],
        cwd=out, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    explicit = (out / "conda-linux-64.lock").read_text()
    assert "@EXPLICIT" in explicit
    python = next(p for p in parsed.package if p.name == "python" and p.platform == "linux-64")
    assert f"{python.url}#{python.hash.md5}" in explicit or f"{python.url}#sha256={python.hash.sha256}" in explicit
    assert "# pip purepkg @ " in explicit


def test_relocking_unchanged_inputs_writes_nothing(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    before = snapshot(project.lockfiles_dir)
    result = lock(project)
    assert result.changed is False
    assert snapshot(project.lockfiles_dir) == before


def test_a_changed_spec_relocks(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    environment = project.envs_dir / "environment.yml"
    environment.write_text(environment.read_text().replace("  - condapkg\n", ""))
    assert lock(project).changed is True
    names = {p.name for p in lockfile.read(lock_path(project.root), display="x").package if p.manager == "conda"}
    assert "condapkg" not in names


def test_an_unsatisfiable_spec_explains_and_writes_nothing(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    before = snapshot(project.lockfiles_dir)
    environment = project.envs_dir / "environment.yml"
    environment.write_text(environment.read_text().replace("python 3.11.*", "python 3.12.*"))

    done = run_cli(project.root, "lock", "--tier", "conda")

    assert done.returncode == 2
    first, fix = done.stderr.strip().splitlines()[-2:]
    assert first.startswith("envtiers: error: the conda specs cannot be satisfied for linux-64")
    assert "python 3.12.*" in first
    assert fix.startswith("  fix: relax or correct the specs in envs/environment.yml")
    assert "Traceback" not in done.stderr
    assert snapshot(project.lockfiles_dir) == before


def test_solving_never_uses_the_hosts_virtual_packages(make_conda_project: CondaProjectFactory) -> None:
    """Without __glibc declared for linux-64 the interpreter cannot be chosen, whatever the host has."""
    project = make_conda_project(lock=False)
    with pytest.raises(ResolutionError, match="__glibc"):
        rattler.solve(
            channels=[next(iter(project.raw["conda"]["mirrors"].values()))],
            specs=["python 3.11.*"],
            platform="linux-64",
            virtual={"__unix": "0"},
            cache_dir=project.cache_dir / "conda",
        )


def test_a_channel_over_http_locks_its_own_urls(make_conda_project: CondaProjectFactory, conda_server) -> None:  # type: ignore[no-untyped-def]
    environment = f"channels:\n  - {conda_server.url}\ndependencies:\n  - python 3.11.*\n  - pip\n"
    project = make_conda_project(environment=environment, mirror="")
    raw = yaml.safe_load(lock_path(project.root).read_text())
    urls = [p["url"] for p in raw["package"] if p["manager"] == "conda"]
    assert urls and all(url.startswith(conda_server.url + "/") for url in urls)


def test_the_conda_forge_snapshot_solves_to_its_python_3_11_15(tmp_path: Path) -> None:
    """The real conda-forge metadata this repository's lock is solved from (see its SOURCE.md)."""
    expected = {
        "linux-64": (
            "hd63d673_0_cpython", "bf6a32c69889d38482436a786bea32276756cedf0e9805cc856ffd088e8d00f0",
            {"__glibc": "2.28", "__unix": "0", "__linux": "0"}, 28,
        ),
        "osx-arm64": (
            "h8561d8f_0_cpython", "9a846065863925b2562126a5c6fecd7a972e84aaa4de9e686ad3715ca506acfa",
            {"__osx": "13.0", "__unix": "0"}, 18,
        ),
    }  # fmt: skip
    for platform, (build, sha256, virtual, count) in expected.items():
        records = rattler.solve(
            channels=[SNAPSHOT.as_uri()], specs=["python 3.11.*", "pip"], platform=platform,
            virtual=virtual, cache_dir=tmp_path / "rattler",
        )  # fmt: skip
        python = next(r for r in records if r.name.normalized == "python")
        assert (str(python.version), str(python.build), python.sha256.hex()) == ("3.11.15", build, sha256)
        assert len(records) == count


def test_the_committed_lock_is_the_snapshots_solution() -> None:
    from tests.support import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "lockfiles" / "conda-lock.yml").read_text())
    assert raw["version"] == 1 and raw["metadata"]["platforms"] == ["linux-64", "osx-arm64"]
    for platform in ("linux-64", "osx-arm64"):
        conda = [p for p in raw["package"] if p["manager"] == "conda" and p["platform"] == platform]
        assert all(p["url"].startswith(CONDA_FORGE) and len(p["hash"]["sha256"]) == 64 for p in conda)
        python = next(p for p in conda if p["name"] == "python")
        assert python["version"] == "3.11.15"
        pins = {p.name: p.version for p in pip_lockfile.read(REPO_ROOT / "lockfiles" / "pip" / f"{platform}.txt").pins}
        pip = {p["name"]: p["version"] for p in raw["package"] if p["manager"] == "pip" and p["platform"] == platform}
        assert pip == pins


def test_conda_lock_itself_sees_the_lock_as_fresh(make_conda_project: CondaProjectFactory, tmp_path: Path) -> None:
    """conda-lock's --check-input-hash recomputes the content hash and skips the solve. It insists on
    a conda executable before that: a stub that could not solve anything proves none was needed."""
    from envtiers.conda.spec import load_settings

    project = make_conda_project()
    settings = load_settings(project)
    spec = tmp_path / "virtual-packages.yml"
    spec.write_text(lockfile.virtual_package_spec(platforms=project.platforms, virtual=settings.virtual_packages))
    (tmp_path / "mapping.json").write_text("{}")
    stub = tmp_path / "micromamba"
    stub.write_text('#!/bin/sh\necho "micromamba 1.5.0"\n')
    stub.chmod(0o755)

    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "conda-lock"), "lock", "-f", "envs/environment.yml",
            "-p", "linux-64", "-p", "osx-arm64", "--lockfile", "lockfiles/conda-lock.yml", "--check-input-hash",
            "--virtual-package-spec", str(spec), "--pypi_to_conda_lookup_file", str(tmp_path / "mapping.json"),
            "--conda", str(stub),
        ],
        cwd=project.root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Spec hash already locked for ['linux-64', 'osx-arm64']. Skipping solve." in done.stdout + done.stderr


def test_lock_with_every_tier_locks_pip_first_then_conda(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project(lock=False)
    first = run_cli(project.root, "lock")
    again = run_cli(project.root, "lock", "--platform", "linux-64")

    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[-1] == "3 lockfile(s) written, 0 up to date"
    assert lock_path(project.root).is_file()
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[-2:] == [
        "lockfiles/conda-lock.yml: up to date",
        "0 lockfile(s) written, 2 up to date",
    ]


@pytest.mark.parametrize(
    ("args", "headline"),
    [
        (["lock", "--tier", "conda", "--platform", "linux-64"], "the conda lock is one file for every platform"),
        (["env", "create", "--tier", "conda", "--dev"], "--dev and --link-project apply to the pip tier only"),
    ],
)
def test_options_that_do_not_apply_to_the_conda_tier_are_refused(
    make_conda_project: CondaProjectFactory, args: list[str], headline: str
) -> None:
    project = make_conda_project(lock=False)
    done = run_cli(project.root, *args)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(f"envtiers: error: {headline}")
    assert done.stderr.splitlines()[1].startswith("  fix: ")
