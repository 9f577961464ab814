"""The pip tier: hashed pip locks per platform; each task runs on the interpreter of the env
built from the host's lock."""

from __future__ import annotations

from pathlib import Path

from envtiers.envcache import EnvInfo
from envtiers.problems import Problem
from envtiers.settings import Project
from envtiers.tiers import EnvOptions, LockedEnvTier, LockOptions, LockResult, Report


class PipTier(LockedEnvTier):
    name = "pip"

    def lock(self, project: Project, options: LockOptions, report: Report) -> list[LockResult]:
        from envtiers.pip.locker import lock

        platforms = list(options.platforms) or None
        return lock(project, platforms=platforms, force=options.force, upgrade=options.upgrade, report=report)

    def check(self, project: Project) -> tuple[list[str], list[Problem]]:
        from envtiers.pip.checker import check_pip

        return check_pip(project)

    def create_env(self, project: Project, options: EnvOptions) -> EnvInfo:
        """Build (or reuse) the content-addressed env of `lockfiles/pip/<host>.txt`."""
        from envtiers.pip.environment import create

        return create(
            project,
            platform=options.platform,
            dev=options.dev,
            target=options.target,
            link_project=options.link_project,
        )

    def prefix(self, project: Project, options: EnvOptions) -> tuple[str, Path]:
        from envtiers.pip.environment import default_prefix, env_key, read_locks

        key = env_key(project, read_locks(project, platform=options.platform, dev=options.dev))
        return key, (options.target or default_prefix(project, key)).absolute()
