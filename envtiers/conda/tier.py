"""The conda tier for flows: each task runs on the interpreter of the env built from conda-lock.yml."""

from __future__ import annotations

from envtiers.conda.environment import create
from envtiers.envcache import EnvInfo
from envtiers.settings import Project
from envtiers.tiers import LockedEnvTier


class CondaTier(LockedEnvTier):
    name = "conda"
    # A conda interpreter (unlike a venv's) reads the user's site-packages unless told not to.
    python_args = ("-s",)

    def create(self, project: Project) -> EnvInfo:
        """Build (or reuse) the content-addressed conda env of the host's platform in the lock."""
        return create(project)
