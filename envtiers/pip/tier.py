"""The pip tier for flows: each task runs on the interpreter of the env built from the pip lock."""

from __future__ import annotations

from dataclasses import dataclass

from envtiers.pip.environment import create
from envtiers.settings import Project
from envtiers.tiers import REMOTE_ENV_DIR, TIER_VARIABLE, LocalLaunch, envtiers_command, tools_bootstrap


@dataclass(frozen=True)
class PipTier:
    name: str = "pip"

    def local_launch(self, project: Project) -> LocalLaunch:
        """Build (or reuse) the content-addressed env of `lockfiles/pip/<host>.txt`."""
        info = create(project)
        return LocalLaunch(
            tier=self.name,
            key=info.key,
            argv=(str(info.python),),
            env={TIER_VARIABLE: self.name},
            created=info.created,
            prefix=info.prefix,
        )

    def bootstrap_commands(self, project: Project, platform: str) -> list[str]:
        return [
            *tools_bootstrap(project),
            envtiers_command("env", "create", "--tier", "pip", "--platform", platform, "--target", REMOTE_ENV_DIR),
            f"export {TIER_VARIABLE}=pip",
        ]

    def remote_python(self, platform: str) -> str:
        # -s: the user's site-packages must not leak into the locked environment.
        return f"{REMOTE_ENV_DIR}/bin/python -s"

    def remote_image(self, project: Project) -> str | None:
        return None  # any image with python3.11 and tar: the env is built from the lock
