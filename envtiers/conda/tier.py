"""The conda tier for flows: each task runs on the interpreter of the env built from conda-lock.yml."""

from __future__ import annotations

from dataclasses import dataclass

from envtiers.conda.environment import create
from envtiers.settings import Project
from envtiers.tiers import REMOTE_ENV_DIR, TIER_VARIABLE, LocalLaunch, envtiers_command, tools_bootstrap


@dataclass(frozen=True)
class CondaTier:
    name: str = "conda"

    def local_launch(self, project: Project) -> LocalLaunch:
        """Build (or reuse) the content-addressed conda env of the host's platform in the lock."""
        info = create(project)
        return LocalLaunch(
            tier=self.name,
            key=info.key,
            # -s: the user's site-packages must not leak into the locked environment.
            argv=(str(info.python), "-s"),
            env={TIER_VARIABLE: self.name},
            created=info.created,
            prefix=info.prefix,
        )

    def bootstrap_commands(self, project: Project, platform: str) -> list[str]:
        # The tools lock carries py-rattler and conda-lock: the task solves nothing, it installs the lock.
        return [
            *tools_bootstrap(project),
            envtiers_command("env", "create", "--tier", "conda", "--platform", platform, "--target", REMOTE_ENV_DIR),
            f"export {TIER_VARIABLE}=conda",
        ]

    def remote_python(self, platform: str) -> str:
        return f"{REMOTE_ENV_DIR}/bin/python -s"

    def remote_image(self, project: Project) -> str | None:
        return None  # any linux-64 image with python3.11: the interpreter itself comes from the lock
