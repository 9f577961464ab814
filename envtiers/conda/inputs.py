"""What the conda lock is made from, and the hashes of it that the locker stores and `check`
recomputes: environment.yml, the [conda] settings and the pip tier's runtime locks.

Light on purpose (no solver, no conda-lock at import): `envtiers check` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from envtiers.conda import lockfile
from envtiers.conda.spec import CondaSettings, EnvironmentSpec, load_settings, read_environment
from envtiers.errors import LockfileFormatError
from envtiers.hashing import input_hash
from envtiers.pip import lockfile as pip_lockfile
from envtiers.pip.locker import runtime_lock_path
from envtiers.settings import Project


@dataclass(frozen=True)
class Inputs:
    settings: CondaSettings
    environment: EnvironmentSpec
    pip_locks: dict[str, pip_lockfile.PipLock]


def read_inputs(project: Project) -> Inputs:
    """environment.yml, the [conda] settings and the pip runtime locks. Raises SpecError & co."""
    settings = load_settings(project)
    environment = read_environment(settings.environment_file, display=project.rel(settings.environment_file))
    pip_locks = {}
    for platform in project.platforms:
        path = runtime_lock_path(project, platform)
        if not path.is_file():
            raise LockfileFormatError(
                f"{project.rel(path)} is missing: the conda lock's pip entries come from it",
                fix="run `envtiers lock --tier pip` first (`make lock` locks both, pip first)",
            )
        pip_locks[platform] = pip_lockfile.read_intact(path, display=project.rel(path))
    return Inputs(settings, environment, pip_locks)


def expected_input_hash(project: Project, inputs: Inputs) -> str:
    """envtiers' hash of what the conda lock is made from. Mirrors are left out on purpose: where
    metadata is read from never changes what is locked."""
    return input_hash(
        {
            "tier": "conda",
            "python": project.python,
            "platforms": list(project.platforms),
            "environment": inputs.environment.normalised(),
            "virtual_packages": {p: inputs.settings.virtual_packages[p] for p in project.platforms},
            "pip_locks": {p: inputs.pip_locks[p].header.body_sha256 for p in project.platforms},
        }
    )


def expected_spec_digest(project: Project, inputs: Inputs) -> str:
    return lockfile.spec_digest(
        environment_file=inputs.settings.environment_file,
        platforms=project.platforms,
        virtual=inputs.settings.virtual_packages,
    )


def expected_content_hashes(project: Project, inputs: Inputs) -> dict[str, str]:
    return lockfile.content_hashes(
        environment_file=inputs.settings.environment_file,
        platforms=project.platforms,
        virtual=inputs.settings.virtual_packages,
    )
