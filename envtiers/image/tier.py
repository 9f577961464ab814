"""The image tier for flows: each local task runs inside the recorded image (`docker run`); remote
tasks (@batch, @kubernetes) get `image=<repository>@<digest>` and build nothing.

A local task sees the same paths as on the host: the working directory (where Metaflow's local
datastore `.metaflow` lives), the project and the toolkit are mounted at their own paths, and the
task runs as the calling user's uid:gid so what it writes stays the user's. Environment variables
reach the container by name (`-e NAME`), never with their values on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envtiers.errors import InputError
from envtiers.image.record import ImageRecord, read_record
from envtiers.runtime import IMAGE_VARIABLE
from envtiers.settings import Project
from envtiers.tiers import TIER_VARIABLE, LocalLaunch

# Variables a Metaflow task reads, forwarded by name when set on the host (values stay off argv).
FORWARDED_PREFIXES = ("METAFLOW_", "AWS_", "WANDB_", "ENVTIERS_")
FORWARDED_NAMES = (
    "USER",
    "USERNAME",
    "LOGNAME",
    "PYTHONPATH",
    "PYTHONNOUSERSITE",
    "PYTHONUNBUFFERED",
    "TF_CPP_MIN_LOG_LEVEL",
    "TZ",
    TIER_VARIABLE,
)
# Host-only settings that make no sense inside the container.
NOT_FORWARDED = ("ENVTIERS_CACHE_DIR", "ENVTIERS_UV", "ENVTIERS_REGISTRY_PASSWORD", "ENVTIERS_REGISTRY_USER")


def forwarded_names(environ: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    names = {name for name in environ if name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES}
    names |= set(extra)
    return sorted(names - set(NOT_FORWARDED))


def mount_points(paths: Iterable[Path]) -> list[Path]:
    """Resolved, existing `paths` with those inside another one dropped (docker refuses duplicates)."""
    unique = sorted({path.resolve() for path in paths if path.exists()}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path == top or top in path.parents for top in kept):
            kept.append(path)
    return sorted(kept)


def datastore_dirs(cwd: Path, environ: Mapping[str, str]) -> list[Path]:
    """Where the local datastore is: METAFLOW_DATASTORE_SYSROOT_LOCAL, else the nearest `.metaflow`
    at or above `cwd` (Metaflow's own search), else cwd (where Metaflow creates it)."""
    explicit = environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL")
    if explicit:
        return [Path(explicit)]
    for folder in (cwd, *cwd.parents):
        if (folder / ".metaflow").is_dir():
            return [folder / ".metaflow"]
    return []


def docker_run_argv(
    *,
    reference: str,
    mounts: Sequence[Path],
    read_only: Sequence[Path] = (),
    workdir: Path,
    user: str,
    env_names: Sequence[str],
    extra: Sequence[str] = (),
) -> tuple[str, ...]:
    """`docker run ... IMAGE python`: what replaces the interpreter of Metaflow's task command."""
    argv = ["docker", "run", "--rm", "-i", "--network", "host", "--user", user, "--env", "HOME=/tmp"]
    for path in mounts:
        argv += ["--volume", f"{path}:{path}"]
    for path in read_only:
        argv += ["--volume", f"{path}:{path}:ro"]
    argv += ["--workdir", str(workdir)]
    for name in env_names:
        argv += ["-e", name]
    argv += [*extra, reference, "python"]
    return tuple(argv)


@dataclass(frozen=True)
class ImageTier:
    name: str = "image"

    def local_launch(self, project: Project) -> LocalLaunch:
        """`docker run` of the recorded image, pulled when this machine lacks it.

        Raises InputError when there is no record or it is stale, docker errors otherwise.
        """
        record = current_record(project)
        from envtiers.image.docker import session
        from envtiers.image.spec import registry_host

        pulled = False
        with session(registry_host=registry_host(record.repository), report=lambda line: None) as docker:
            if not docker.image_exists(record.reference):
                docker.run(["pull", record.reference], what=f"docker pull {record.reference}")
                pulled = True
        cwd = Path.cwd().resolve()
        toolkit = Path(__file__).resolve().parents[2]
        writable = mount_points([cwd, *datastore_dirs(cwd, os.environ)])
        mounts = mount_points([*writable, project.root])
        read_only = [p for p in mount_points([toolkit]) if not any(p == m or m in p.parents for m in mounts)]
        gpus = os.environ.get("ENVTIERS_DOCKER_GPUS")
        argv = docker_run_argv(
            reference=record.reference,
            mounts=mounts,
            read_only=read_only,
            workdir=cwd,
            user=f"{os.getuid()}:{os.getgid()}",
            # METAFLOW_RUN_ID: set by Metaflow's runtime for each task after the decorators ran.
            env_names=forwarded_names(
                os.environ, extra=(TIER_VARIABLE, IMAGE_VARIABLE, "PYTHONPATH", "PYTHONNOUSERSITE", "METAFLOW_RUN_ID")
            ),
            extra=("--gpus", gpus) if gpus else (),
        )
        return LocalLaunch(
            tier=self.name,
            key=record.lock_hash,
            argv=argv,
            env={TIER_VARIABLE: self.name, IMAGE_VARIABLE: record.reference},
            created=pulled,
            prefix=None,
            env_slot=argv.index(record.reference),
        )

    def bootstrap_commands(self, project: Project, platform: str) -> list[str]:
        return [f"export {TIER_VARIABLE}=image"]  # the image is the environment: nothing to build

    def remote_python(self, platform: str) -> str:
        return "python"

    def remote_image(self, project: Project) -> str | None:
        return read_record(project).reference


def current_record(project: Project) -> ImageRecord:
    """The record, refused when `envtiers check` would call it stale."""
    from envtiers.image.checker import check_image

    record = read_record(project)
    _, problems = check_image(project)
    if problems:
        raise InputError(f"{problems[0].path}: {problems[0].message}", fix=problems[0].fix)
    return record
