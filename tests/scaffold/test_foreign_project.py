"""A team's own Metaflow project adopts envtiers as a user would: the wheel installed with Metaflow
in a fresh venv, then `envtiers init`, `envtiers lock`, `envtiers check` and a flow run whose steps
run in the environment built from the new lock."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from envtiers import __version__
from envtiers.pip.uv import find_uv
from tests.flows.support import flow_env, run_id_of
from tests.support import PackageIndex, snapshot

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    import importlib.util
    import sys

    from metaflow import FlowSpec, step


    class TeamFlow(FlowSpec):
        @step
        def start(self):
            import purepkg

            self.purepkg_version = purepkg.__version__
            self.python = sys.executable
            # In the launcher's venv (envtiers' own dependency) but not in the lock: must not leak.
            self.sees_uv = importlib.util.find_spec("uv") is not None
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        TeamFlow()
    """
)


def tool(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command of the tool venv (envtiers, python), as a user with that venv activated runs it."""
    env = flow_env({"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(venv), "PYTHONPATH": None})
    command = [str(venv / "bin" / args[0]), *args[1:]]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def adopt(venv: Path, project: Path, index: PackageIndex) -> dict[str, object]:
    """init, lock, check, run; returns the start step's artifacts."""
    init = tool(venv, "envtiers", "--index-url", index.url, "init", "--platforms", "linux-64", cwd=project)
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[-3:] == [
        "  envtiers lock",
        "  envtiers check",
        "  python flow.py --environment=envtiers-pip run",
    ]
    locked = tool(venv, "envtiers", "lock", cwd=project)
    assert locked.returncode == 0, locked.stderr
    lock_text = (project / "lockfiles" / "pip" / "linux-64.txt").read_text()
    assert f"(envtiers {__version__})" in lock_text.splitlines()[0]
    checked = tool(venv, "envtiers", "check", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = tool(venv, "python", "flow.py", "--environment=envtiers-pip", "run", cwd=project)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    run_id = run_id_of(ran.stdout + ran.stderr)
    read = tool(
        venv,
        "python",
        "-c",
        "import json; from metaflow import Run, namespace; namespace(None); "
        f"t = Run('TeamFlow/{run_id}')['start'].task; "
        "print(json.dumps({n: t[n].data for n in ('purepkg_version', 'python', 'sees_uv', 'envtiers_tier', "
        "'envtiers_prefix', 'envtiers_lock_hash')}))",
        cwd=project,
    )
    assert read.returncode == 0, read.stderr
    return dict(json.loads(read.stdout.splitlines()[-1]))


def assert_in_locked_env(artifacts: dict[str, object], venv: Path, tmp_path: Path) -> None:
    prefix = Path(str(artifacts["envtiers_prefix"]))
    assert artifacts["envtiers_tier"] == "pip"
    assert prefix.is_relative_to(tmp_path / "cache" / "envs")  # the env built from the lock
    assert Path(str(artifacts["python"])).parent.parent == prefix
    assert not Path(str(artifacts["python"])).is_relative_to(venv)
    assert artifacts["sees_uv"] is False
    marker = json.loads((prefix / ".envtiers-complete.json").read_text())
    assert marker["key"] == artifacts["envtiers_lock_hash"]


def test_requirements_txt_project(tool_venv: Path, tool_index: PackageIndex, tmp_path: Path) -> None:
    project = tmp_path / "team"
    project.mkdir()
    (project / "flow.py").write_text(FLOW)
    (project / "requirements.txt").write_text("purepkg\n")

    artifacts = adopt(tool_venv, project, tool_index)

    assert artifacts["purepkg_version"] == "2.0"  # the newest the index has: nothing preferred
    assert_in_locked_env(artifacts, tool_venv, tmp_path)
    version = tool(tool_venv, "envtiers", "--version", cwd=project)
    assert version.stdout.strip() == f"envtiers {__version__}"
    # A remote task gets what it rebuilds the env with: the installed toolkit, the locks (with
    # the tools lock of uv + packaging that it installs first) and the settings.
    listed = tool(tool_venv, "python", "flow.py", "--environment=envtiers-pip", "package", "list", cwd=project)
    assert listed.returncode == 0, listed.stderr[-3000:]
    for shipped in ("envtiers/cli.py", "envtiers/pip/environment.py", "lockfiles/tools.txt", "envs/tiers.toml"):
        assert shipped in listed.stdout + listed.stderr
    assert "uv==" in (project / "lockfiles" / "tools.txt").read_text()

    # init again: nothing changes; after an edit it refuses (writing nothing) until --force.
    before = snapshot(project / "envs"), (project / "envtiers.mk").read_bytes()
    again = tool(tool_venv, "envtiers", "--index-url", tool_index.url, "init", "--platforms", "linux-64", cwd=project)
    assert again.returncode == 0, again.stderr
    assert "wrote" not in again.stderr and "unchanged envs/requirements.in" in again.stderr
    assert (snapshot(project / "envs"), (project / "envtiers.mk").read_bytes()) == before
    spec = project / "envs" / "requirements.in"
    spec.write_text(spec.read_text() + "markerpkg\n")
    edited = snapshot(project / "envs")
    refused = tool(tool_venv, "envtiers", "--index-url", tool_index.url, "init", "--platforms", "linux-64", cwd=project)
    assert refused.returncode == 2
    assert "-markerpkg" in refused.stderr and "--force" in refused.stderr
    assert snapshot(project / "envs") == edited
    forced = tool(
        tool_venv, "envtiers", "--index-url", tool_index.url, "init", "--platforms", "linux-64", "--force", cwd=project
    )
    assert forced.returncode == 0, forced.stderr
    assert "markerpkg" not in spec.read_text()


def test_pyproject_project_keeps_its_uv_lock_versions(
    tool_venv: Path, tool_index: PackageIndex, tmp_path: Path
) -> None:
    project = tmp_path / "team"
    project.mkdir()
    (project / "flow.py").write_text(FLOW)
    pyproject = '[project]\nname = "team"\nversion = "0.1"\nrequires-python = ">=3.11"\ndependencies = [{deps}]\n'
    # The team's uv.lock, made by uv when they required purepkg<2; the spec allows 2.0 since.
    (project / "pyproject.toml").write_text(pyproject.format(deps='"purepkg<2"'))
    env = {**os.environ, "UV_NO_CONFIG": "1"}
    done = subprocess.run(
        [find_uv(), "lock", "--index-url", tool_index.url], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert 'name = "purepkg"\nversion = "1.0"' in (project / "uv.lock").read_text()
    (project / "pyproject.toml").write_text(pyproject.format(deps='"purepkg"'))

    artifacts = adopt(tool_venv, project, tool_index)

    assert artifacts["purepkg_version"] == "1.0"  # the uv.lock's version, kept by the first lock
    assert "purepkg\n" in (project / "envs" / "requirements.in").read_text()
    assert "purepkg==1.0" in (project / "envs" / "preferences.txt").read_text()
    assert_in_locked_env(artifacts, tool_venv, tmp_path)
