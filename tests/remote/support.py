"""The local AWS (.ci/aws-up: moto's server whose Batch runs each job as a container) for tests.

`.ci/aws-up` writes Metaflow's settings to an env file (`export NAME=VALUE` lines); CI passes its
path as ENVTIERS_TEST_AWS_ENV. Without it, a test session runs `.ci/aws-up` itself when docker-up's
ENVTIERS_TEST_* exports are there. The settings stay out of os.environ: they go only into the
environment of the commands a test runs, so local-datastore tests never see an S3 datastore.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conda.support import add_conda_tier
from tests.support import REPO_ROOT, build_wheel, wheel_from_installed, write_project

ENV_FILE_VARIABLE = "ENVTIERS_TEST_AWS_ENV"
# The tiny remote flow's lock: its own package, Metaflow, and boto3 (the task's S3 datastore).
REMOTE_SPEC = "purepkg\nmetaflow\nboto3\n"
# What a task bootstraps with pip from the tools lock: uv (and for the conda tier py-rattler).
REMOTE_TOOLS = "uv\npackaging\n"
CONDA_TOOLS = REMOTE_TOOLS + "py-rattler\nconda-lock\n"


def add_remote_conda_tier(root: Path, *, mirror: str, environment: str) -> None:
    """The conda tier for a remote test project, declaring this machine's glibc for linux-64: the
    remote index's wheels are repacked from this machine's installs (cryptography's is tagged
    manylinux_2_34), and a shipped env takes only the wheels that fit the declared glibc."""
    add_conda_tier(root, mirror=mirror, environment=environment)
    settings = root / "envs" / "tiers.toml"
    settings.write_text(settings.read_text().replace('__glibc = "2.28"', '__glibc = "2.36"'))


def write_remote_project(root: Path, *, index_url: str, tools: str = REMOTE_TOOLS) -> Path:
    """A tiny linux-64 project for remote runs, locking REMOTE_SPEC and `tools` against `index_url`
    (an index on 127.0.0.1: the job containers share the host network)."""
    return write_project(root, requirements=REMOTE_SPEC, index_url=index_url, platforms=("linux-64",), tools=tools)


# What a remote task's environment needs besides the tiny flow's own package: Metaflow, boto3 for
# the S3 datastore, and the tools lock's uv + packaging (the task bootstraps them with pip).
REMOTE_DISTS = (
    "metaflow",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset-normalizer",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "packaging",
    # the conda tier's tools: py-rattler and conda-lock (which reads the lock), with what they need
    "py-rattler",
    "conda-lock",
)


def installed_closure(names: tuple[str, ...]) -> list[str]:
    """`names` and everything they require (on Linux, without extras), as installed here."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen or name == "uv":
            continue
        seen.add(name)
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return sorted(seen)


def add_remote_dists(directory: Path) -> Path:
    """Put into `directory` (a package index's files) what remote tasks install besides the tiny
    flow's own package: REMOTE_DISTS and their requirements and uv, repacked from this interpreter,
    and stand-ins for the tools lock's Windows/macOS-only dependencies. Returns `directory`."""
    for name in installed_closure(REMOTE_DISTS):
        wheel_from_installed(directory, name)
    wheel_from_installed(directory, "uv")
    # The tools lock is universal: Windows/macOS-only dependencies must exist, though no Linux
    # task installs them. Stand-ins do (this machine has none of them installed).
    for name, version in (("colorama", "0.4.6"), ("pywin32-ctypes", "0.2.3"), ("xattr", "1.3.0")):
        build_wheel(directory, name.replace("-", "_"), version)
    return directory


@dataclass(frozen=True)
class LocalAws:
    """What .ci/aws-up exported: `settings` (the env a remote run needs) and the endpoint."""

    settings: dict[str, str]

    @property
    def endpoint(self) -> str:
        return self.settings["ENVTIERS_TEST_AWS"]

    @property
    def secret_values(self) -> list[str]:
        return [self.settings["AWS_ACCESS_KEY_ID"], self.settings["AWS_SECRET_ACCESS_KEY"]]

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """The settings with a datastore root of its own (`prefix`, default a fresh name), so runs
        of different tests (and helpers) never see each other's flows."""
        env = dict(self.settings)
        root = env["METAFLOW_DATASTORE_SYSROOT_S3"].rstrip("/")
        env["METAFLOW_DATASTORE_SYSROOT_S3"] = f"{root}/{prefix or uuid.uuid4().hex[:12]}"
        env["METAFLOW_DATATOOLS_S3ROOT"] = env["METAFLOW_DATASTORE_SYSROOT_S3"] + "/data"
        return env

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.settings["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.settings["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.settings["AWS_SECRET_ACCESS_KEY"],
        )

    def job_definitions(self) -> list[dict[str, Any]]:
        return list(self.client("batch").describe_job_definitions()["jobDefinitions"])

    def job_logs(self, job_id: str) -> str:
        """The job's container output, as moto wrote it to CloudWatch Logs."""
        batch, logs = self.client("batch"), self.client("logs")
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        stream = job.get("container", {}).get("logStreamName")
        if not stream:
            return ""
        events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
        return "\n".join(event["message"] for event in events)


def parse_exports(text: str) -> dict[str, str]:
    settings = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            settings[name] = value
    return settings


def start_local_aws() -> LocalAws:
    """The local AWS from ENVTIERS_TEST_AWS_ENV, else from running .ci/aws-up (idempotent)."""
    path = os.environ.get(ENV_FILE_VARIABLE)
    if path:
        return LocalAws(parse_exports(Path(path).read_text()))
    done = subprocess.run(
        [str(REPO_ROOT / ".ci" / "aws-up")], capture_output=True, text=True, timeout=900, cwd=REPO_ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f".ci/aws-up failed:\n{done.stderr[-3000:]}")
    return LocalAws(parse_exports(done.stdout))
