"""The pip tier for flows: each task runs on the interpreter of the env built from the pip lock."""

from __future__ import annotations

from envtiers.envcache import EnvInfo
from envtiers.pip.environment import create
from envtiers.settings import Project
from envtiers.tiers import LockedEnvTier


class PipTier(LockedEnvTier):
    name = "pip"

    def create(self, project: Project) -> EnvInfo:
        """Build (or reuse) the content-addressed env of `lockfiles/pip/<host>.txt`."""
        return create(project)
