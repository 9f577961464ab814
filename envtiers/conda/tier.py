"""The conda tier: one conda-lock file for every platform (interpreter and native libraries too);
each task runs on the interpreter of the env built from the host's records."""

from __future__ import annotations

from pathlib import Path

from envtiers.envcache import EnvInfo
from envtiers.errors import InputError
from envtiers.problems import Problem
from envtiers.settings import Project
from envtiers.tiers import EnvOptions, LockedEnvTier, LockOptions, LockResult, Report


class CondaTier(LockedEnvTier):
    name = "conda"
    # A conda interpreter (unlike a venv's) reads the user's site-packages unless told not to.
    python_args = ("-s",)

    def is_configured(self, project: Project) -> bool:
        from envtiers.conda.spec import is_configured

        return is_configured(project)

    def lock(self, project: Project, options: LockOptions, report: Report) -> list[LockResult]:
        from envtiers.conda.locker import lock

        # The conda lock is one file for every platform, relocked when stale.
        if options.platforms and options.only_this_tier:
            raise InputError(
                "the conda lock is one file for every platform: --platform does not apply",
                fix="run `envtiers lock --tier conda` without --platform",
            )
        return [lock(project, force=options.force or options.upgrade, report=report)]

    def check(self, project: Project) -> tuple[list[str], list[Problem]]:
        from envtiers.conda.checker import check_conda

        return check_conda(project)

    def create_env(self, project: Project, options: EnvOptions) -> EnvInfo:
        """Build (or reuse) the content-addressed conda env of the host's platform in the lock."""
        from envtiers.conda.environment import create

        _no_dev(options)
        return create(project, platform=options.platform, target=options.target)

    def prefix(self, project: Project, options: EnvOptions) -> tuple[str, Path]:
        from envtiers.conda.environment import default_prefix, env_key, read_lock

        _no_dev(options)
        platform, lock = read_lock(project, platform=options.platform)
        key = env_key(lock, platform)
        return key, (options.target or default_prefix(project, key)).absolute()


def _no_dev(options: EnvOptions) -> None:
    if options.dev or options.link_project:
        raise InputError("--dev and --link-project apply to the pip tier only", fix="drop them, or use --tier pip")
