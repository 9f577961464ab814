"""The tiers a flow's steps can run in, behind one interface the Metaflow extension calls.

A tier answers four questions about a project:

- `local_launch`: how does a task on this machine start inside the tier's environment?
  (the pip tier: the interpreter of the env built from the host's lock; the image tier: `docker run`)
- `bootstrap_commands` / `remote_python`: what does a remote task (AWS Batch, Kubernetes) run,
  from the code package it downloaded, before its step command, and with which interpreter?
- `remote_image`: which image a remote task must run in, when the tier decides it.

Tiers never resolve anything: they build from committed lockfiles, or fail with the command that
fixes them. Each tier lives in its own package: `envtiers.{pip,conda,image}.tier`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from envtiers.envcache import EnvInfo
from envtiers.errors import InputError
from envtiers.settings import Project

TIER_NAMES = ("pip", "conda", "image")

# Where a remote task builds its environment, relative to the code package it runs in.
REMOTE_ENV_DIR = ".envtiers/env"
REMOTE_TOOLS_DIR = ".envtiers/tools"

# Set in every task's environment by the launcher, read by the task (and by `detector`).
TIER_VARIABLE = "ENVTIERS_TIER"


@dataclass(frozen=True)
class LocalLaunch:
    """How the runtime starts a task inside the tier: `argv` replaces the interpreter of Metaflow's
    entrypoint (`[python, flow.py]` becomes `[*argv, flow.py]`), `env` is added to its environment."""

    tier: str
    key: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    created: bool = False
    prefix: Path | None = None
    # Where `-e NAME` options go in argv (the image tier's `docker run`), or None: names the task's
    # runtime adds to the launcher's environment must be forwarded into the container.
    env_slot: int | None = None

    def argv_forwarding(self, names: Iterable[str], files: Iterable[str] = ()) -> tuple[str, ...]:
        """`argv` with `-e NAME` for each of `names` not forwarded yet, and a read-only mount of each
        of `files` (files the runtime names on the task's command line, like Metaflow's
        --local-config-file in the host's temp dir). Unchanged without a slot."""
        if self.env_slot is None:
            return self.argv
        head, tail = self.argv[: self.env_slot], self.argv[self.env_slot :]
        have = {head[i + 1] for i in range(len(head) - 1) if head[i] == "-e"}
        flags = [part for name in sorted(set(names) - have) for part in ("-e", name)]
        flags += [part for path in sorted(set(files)) for part in ("--volume", f"{path}:{path}:ro")]
        return (*head, *flags, *tail)


class Tier(Protocol):
    @property
    def name(self) -> str: ...

    def local_launch(self, project: Project) -> LocalLaunch: ...

    def bootstrap_commands(self, project: Project, platform: str) -> list[str]: ...

    def remote_python(self, platform: str) -> str: ...

    def remote_image(self, project: Project) -> str | None: ...


class LockedEnvTier:
    """A tier whose environment is built from a lockfile (pip, conda): locally the content-addressed
    env of the host's lock, remotely the same env rebuilt from the lockfiles in the code package."""

    name = ""
    # Extra interpreter options for local tasks (-s: no user site-packages leaking in).
    python_args: tuple[str, ...] = ()

    def create(self, project: Project) -> EnvInfo:
        raise NotImplementedError

    def local_launch(self, project: Project) -> LocalLaunch:
        info = self.create(project)
        return LocalLaunch(
            tier=self.name,
            key=info.key,
            argv=(str(info.python), *self.python_args),
            env={TIER_VARIABLE: self.name},
            created=info.created,
            prefix=info.prefix,
        )

    def bootstrap_commands(self, project: Project, platform: str) -> list[str]:
        # The tools lock carries uv (and py-rattler): the task installs the lock, it solves nothing.
        create = ("env", "create", "--tier", self.name, "--platform", platform, "--target", REMOTE_ENV_DIR)
        return [*tools_bootstrap(project), envtiers_command(*create), f"export {TIER_VARIABLE}={self.name}"]

    def remote_python(self, platform: str) -> str:
        # -s: the user's site-packages must not leak into the locked environment.
        return f"{REMOTE_ENV_DIR}/bin/python -s"

    def remote_image(self, project: Project) -> str | None:
        return None  # any linux-64 image with python3 and tar: the env is built from the lock


def get_tier(name: str) -> Tier:
    if name == "pip":
        from envtiers.pip.tier import PipTier

        return PipTier()
    if name == "conda":
        from envtiers.conda.tier import CondaTier

        return CondaTier()
    if name == "image":
        from envtiers.image.tier import ImageTier

        return ImageTier()
    raise InputError(f"unknown tier {name!r}", fix=f"use one of {', '.join(TIER_NAMES)}")


def tools_bootstrap(project: Project) -> list[str]:
    """Shell commands that install envtiers' own needs (uv, packaging) in a remote task, from the
    hashed tools lock shipped in the code package: the only thing the task installs with pip."""
    tools_lock = project.rel(project.lockfiles_dir / "tools.txt")
    # The index the lock was resolved against (a mirror, [pip] index_url): the task installs from it.
    index = f"--index-url {shlex.quote(project.pip.index_url)} " if project.pip.index_url else ""
    return [
        "python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes "
        f"{index}--target {REMOTE_TOOLS_DIR} -r {shlex.quote(tools_lock)}",
    ]


def envtiers_command(*args: str) -> str:
    """`python -m envtiers ARGS` as a remote task runs it: from the code package, on the tools."""
    quoted = " ".join(shlex.quote(a) for a in args)
    return (
        f"PYTHONPATH={REMOTE_TOOLS_DIR}:. ENVTIERS_UV={REMOTE_TOOLS_DIR}/bin/uv python -m envtiers --project . {quoted}"
    )
