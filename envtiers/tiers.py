"""The tiers a flow's steps can run in, behind one interface (`Tier`) that the CLI, `check` and
the Metaflow extension call; `envtiers.registry` lists the tiers.

A tier locks its inputs (`lock`), checks its lockfiles offline (`check`), builds or locates its
environment (`create_env`, `env_path`), and answers four questions for a flow:

- `local_launch`: how does a task on this machine start inside the tier's environment?
  (the pip tier: the interpreter of the env built from the host's lock; the image tier: `docker run`)
- `bootstrap_commands` / `remote_python`: what does a remote task (AWS Batch, Kubernetes) run,
  from the code package it downloaded, before its step command, and with which interpreter?
- `remote_image`: which image a remote task must run in, when the tier decides it.

Tiers never resolve anything: they build from committed lockfiles, or fail with the command that
fixes them. Each tier lives in its own package: `envtiers.{pip,conda,image}.tier`. This module
imports none of them (the registry imports them lazily), so every import points one way.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from envtiers.envcache import EnvInfo, python_in, require_complete
from envtiers.errors import InputError
from envtiers.problems import Problem
from envtiers.settings import Project

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


@dataclass(frozen=True)
class LockResult:
    path: Path
    changed: bool
    packages: int
    seconds: float


@dataclass(frozen=True)
class LockOptions:
    platforms: tuple[str, ...] = ()
    force: bool = False
    upgrade: bool = False
    only_this_tier: bool = False  # --tier named it (options that do not apply are refused)


@dataclass(frozen=True)
class EnvOptions:
    platform: str | None = None
    target: Path | None = None
    dev: bool = False
    link_project: bool = False


Report = Callable[[str], None]


class Tier(Protocol):
    @property
    def name(self) -> str: ...

    def is_configured(self, project: Project) -> bool: ...

    def lock(self, project: Project, options: LockOptions, report: Report) -> list[LockResult]: ...

    def check(self, project: Project) -> tuple[list[str], list[Problem]]: ...

    def create_env(self, project: Project, options: EnvOptions) -> EnvInfo: ...

    def env_path(self, project: Project, options: EnvOptions) -> Path: ...

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

    def is_configured(self, project: Project) -> bool:
        return True

    def lock(self, project: Project, options: LockOptions, report: Report) -> list[LockResult]:
        raise NotImplementedError

    def check(self, project: Project) -> tuple[list[str], list[Problem]]:
        raise NotImplementedError

    def create_env(self, project: Project, options: EnvOptions) -> EnvInfo:
        raise NotImplementedError

    def prefix(self, project: Project, options: EnvOptions) -> tuple[str, Path]:
        """(cache key, prefix) of the environment for the current lock (not necessarily built)."""
        raise NotImplementedError

    def create(self, project: Project) -> EnvInfo:
        """The host's environment, refused before anything is built when the lock is stale."""
        refuse_stale(self, project)
        return self.create_env(project, EnvOptions())

    def env_path(self, project: Project, options: EnvOptions) -> Path:
        """The interpreter of the environment for the current lock (where `env create` puts it).
        Raises InputError when a folder is there but was never completed (a build that failed or
        was interrupted is not an environment)."""
        key, prefix = self.prefix(project, options)
        if prefix.exists() or prefix.is_symlink():
            target = f" --target {options.target}" if options.target else ""
            require_complete(prefix, key, fix=f"run `envtiers env create --tier {self.name}{target}`")
        return python_in(prefix)

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


def refuse_stale(tier: Tier, project: Project) -> None:
    """Raise InputError with the first problem `envtiers check` finds in the tier's lockfiles: a
    stale or tampered lock never starts a task. A tier the project does not configure is left to
    fail where its environment is built, with the lock it lacks."""
    if not tier.is_configured(project):
        return
    _, problems = tier.check(project)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: run `envtiers check --tier {tier.name}`)" if len(problems) > 1 else ""
        raise InputError(f"{first.path}: {first.message}{more}", fix=first.fix)


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
