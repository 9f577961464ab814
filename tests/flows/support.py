"""Running flows as a user does (a subprocess per command) and reading their artifacts back with
Metaflow's Client API (in a subprocess too: Metaflow reads its settings once, at import)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DETECTOR_FLOW = REPO_ROOT / "flows" / "detector_flow.py"
# What a project copy needs for the detector flow: the flow, its code, the toolkit and the locks.
PROJECT_PARTS = ("envtiers", "metaflow_extensions", "detector", "flows", "envs", "lockfiles", "docker")

TINY_FLOW = textwrap.dedent(
    '''
    """Two steps that report the interpreter they run on and what it can import."""
    import importlib.util
    import sys

    from metaflow import FlowSpec, step


    class TinyFlow(FlowSpec):
        @step
        def start(self):
            import purepkg

            self.purepkg_version = purepkg.__version__
            # In .venv (the launcher) but not in the tiny lock: must not leak into the step.
            self.sees_pytest = importlib.util.find_spec("pytest") is not None
            self.next(self.end)

        @step
        def end(self):
            self.end_python = sys.executable


    if __name__ == "__main__":
        TinyFlow()
    '''
)


# Locks the tiny flows use: purepkg and Metaflow, linux-64 only (charset-normalizer, a Metaflow
# dependency, is repacked from this machine); boto3 (S3 only) is overridden away.
FLOW_SPEC = "purepkg\nmetaflow\n"
FLOW_OVERRIDES = 'boto3 ; sys_platform == "never"\n'


def write_flow_project(root: Path, *, index_url: str, requirements: str = FLOW_SPEC) -> Path:
    """A project for tiny flows, locking against `index_url` (tests/flows' `flow_index`)."""
    from tests.support import write_project

    return write_project(
        root, requirements=requirements, index_url=index_url, platforms=("linux-64",), overrides=FLOW_OVERRIDES
    )


def write_tiny_flow(root: Path) -> Path:
    flow = root / "flows" / "tiny_flow.py"
    flow.parent.mkdir(exist_ok=True)
    flow.write_text(TINY_FLOW)
    return flow


def tiny_artifacts(cwd: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """TinyFlow's envtiers_* artifacts per step, and what its start step could import."""
    return client(
        f"""
        run = Run("TinyFlow/{run_id}")
        result = {{step.id: {{name: step.task[name].data for name in (
            "envtiers_tier", "envtiers_lock_hash", "envtiers_python", "envtiers_prefix")}} for step in run}}
        result["start"].update(purepkg=run["start"].task.data.purepkg_version,
                               sees_pytest=run["start"].task.data.sees_pytest)
        """,
        cwd=cwd,
    )


def flow_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test's environment plus what Metaflow needs (a user name that is not root), updated
    with `extra`, where None removes a variable."""
    env = {**os.environ, "USER": "envtiers-tests", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("METAFLOW_USER", None)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_flow(
    flow: Path,
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """`python FLOW ARGS` from `cwd` (where the local datastore goes), stdout and stderr together."""
    return subprocess.run(
        [sys.executable, str(flow), *args],
        cwd=cwd,
        env=flow_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def client(code: str, *, cwd: Path, env: Mapping[str, str | None] | None = None) -> Any:
    """Run `code` (which sets `result`) with the Client API from `cwd`; returns `result` (JSON)."""
    script = "import json\nfrom metaflow import Flow, Run, namespace\nnamespace(None)\n"
    script += textwrap.dedent(code) + "\nprint('RESULT=' + json.dumps(result, default=str))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=flow_env(env), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT="))
    return json.loads(line.removeprefix("RESULT="))


def run_id_of(output: str) -> str:
    """The run id Metaflow prints as it starts ("Workflow starting (run-id 123):")."""
    marker = "(run-id "
    start = output.index(marker) + len(marker)
    return output[start : output.index(")", start)]


def copy_project(dest: Path) -> Path:
    """A copy of this repository's flow, code, toolkit, settings and lockfiles under `dest`."""
    ignore = shutil.ignore_patterns("__pycache__", ".metaflow", "*.pyc")
    for part in PROJECT_PARTS:
        shutil.copytree(REPO_ROOT / part, dest / part, ignore=ignore)
    return dest


def assert_ran_in(artifacts: Mapping[str, Any], *, tier: str, prefix: Path, key: str) -> None:
    """A task's envtiers_* artifacts point at the environment built from the lock."""
    assert artifacts["envtiers_tier"] == tier
    assert artifacts["envtiers_lock_hash"] == key
    assert Path(artifacts["envtiers_prefix"]) == prefix
    assert Path(artifacts["envtiers_python"]).parent.parent == prefix
    assert Path(artifacts["envtiers_prefix"]) != REPO_ROOT / ".venv"
    assert Path(artifacts["envtiers_python"]) != Path(sys.executable)


def uv_cache() -> str:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("UV_CACHE_DIR") or str(Path(xdg) / "uv")


def card_components(html: str) -> list[dict[str, Any]]:
    """The components a Metaflow card page renders, decoded from the data embedded in its HTML."""
    found = re.search(r'window\.__MF_DATA__\["[^"]+"\] = "([A-Za-z0-9+/=]+)"', html)
    assert found, "no card data in the HTML"
    page = json.loads(base64.b64decode(found.group(1)))
    (section,) = page["components"][0]["contents"]
    return list(section["contents"])


def detector_run_inputs(base: Path) -> tuple[Path, dict[str, str | None]]:
    """A 40-image sample dataset under `base` and the environment for detector flow runs there:
    no redirecting variable from the caller, the shared uv cache, an envtiers cache of its own."""
    from detector.sample import generate_sample
    from envtiers.settings import REDIRECTING_VARIABLES

    sample = base / "sample"
    generate_sample(sample, images=40)
    env: dict[str, str | None] = {name: None for name in REDIRECTING_VARIABLES}
    env.update(
        UV_CACHE_DIR=uv_cache(),
        ENVTIERS_CACHE_DIR=str(base / "cache"),
        DETECTOR_RUNS_DIR=str(base / "runs"),
        DETECTOR_FAIL_AT=None,
    )
    return sample, env


def evaluation_card_components(run_id: str, *, cwd: Path, env: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """The components of DetectorFlow's evaluation card of run `run_id`, read as a user would
    (`card get`)."""
    out = cwd / f"card-{run_id}.html"
    done = run_flow(
        DETECTOR_FLOW, ["card", "get", "--id", "evaluation", f"{run_id}/evaluate_model", str(out)], cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return card_components(out.read_text())


# The detector flow's arguments in tests: the `test` model, one epoch, W&B offline (its files stay
# under the run).
DETECTOR_RUN_ARGS = ("--model-config", "test", "--epochs", "1", "--wandb-mode", "offline")


@dataclass(frozen=True)
class FlowRuns:
    """Three pip-tier DetectorFlow runs under `base` (its local datastore in `base/.metaflow`, the
    deploy steps' exports under `base/runs`), made by `make_detector_flow_runs`."""

    base: Path
    env: dict[str, str | None]
    sample: Path
    a: subprocess.CompletedProcess[str]  # a full run: trained, evaluated, exported
    b: subprocess.CompletedProcess[str]  # resume of A from evaluate_model, failing there
    c: subprocess.CompletedProcess[str]  # resume of B once the failure is gone: a second export


def make_detector_flow_runs(base: Path) -> FlowRuns:
    """Runs A, B and C of `FlowRuns` in the pip tier from `base` (one training, A's); asserts only
    that A succeeds, what B and C did is for the tests to check."""
    sample, env = detector_run_inputs(base)
    common = ["--environment=envtiers-pip"]
    a = run_flow(DETECTOR_FLOW, [*common, "run", "--data", str(sample), *DETECTOR_RUN_ARGS], cwd=base, env=env)
    assert a.returncode == 0, a.stdout[-5000:]
    b = run_flow(
        DETECTOR_FLOW,
        [*common, "resume", "evaluate_model", "--origin-run-id", run_id_of(a.stdout)],
        cwd=base,
        env={**env, "DETECTOR_FAIL_AT": "evaluate_model"},
    )
    c = run_flow(DETECTOR_FLOW, [*common, "resume", "--origin-run-id", run_id_of(b.stdout)], cwd=base, env=env)
    return FlowRuns(base=base, env=env, sample=sample, a=a, b=b, c=c)
