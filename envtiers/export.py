"""`envtiers export`: a tier's exact pins in another tool's vocabulary.

`--format metaflow` serves teams that keep stock `@pypi` / `@conda` on networked machines: the
JSON holds the keyword arguments of `@pypi_base(...)` (or `@pypi`), taken from the lock, so
Metaflow's own resolver gets exactly the locked versions and nothing can drift:

    pins = json.load(open("lockfiles/metaflow-pypi-linux-64.json"))   # envtiers export > that file
    @pypi_base(**pins)
    class MyFlow(FlowSpec): ...

or call `pypi_base_kwargs()` from the flow file. Remote steps (`@batch`, `@kubernetes`) run on
linux-64, the default platform.
"""

from __future__ import annotations

import json
from typing import Any

from envtiers.errors import InputError
from envtiers.pip import lockfile
from envtiers.pip.locker import runtime_lock_path
from envtiers.settings import Project, load_project

FORMATS = ("metaflow",)
DEFAULT_PLATFORM = "linux-64"


def pypi_base_kwargs(project: Project | None = None, *, platform: str = DEFAULT_PLATFORM) -> dict[str, Any]:
    """`{"python": ..., "packages": {name: version}}` from `lockfiles/pip/<platform>.txt`.

    Raises LockfileFormatError for a missing or damaged lock, InputError for an unknown platform.
    """
    lock = intact_runtime_lock(project or load_project(), platform)
    return {"python": lock.header.python, "packages": {pin.name: pin.version for pin in lock.pins}}


def intact_runtime_lock(project: Project, platform: str) -> lockfile.PipLock:
    """`lockfiles/pip/<platform>.txt`, refused when edited after locking. Raises InputError /
    LockfileFormatError (what every export starts from)."""
    if platform not in project.platforms:
        raise InputError(f"{platform} is not a platform of this project", fix=f"use {', '.join(project.platforms)}")
    path = runtime_lock_path(project, platform)
    return lockfile.read_intact(path, display=project.rel(path))


def export(project: Project, *, tier: str, fmt: str, platform: str = DEFAULT_PLATFORM) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")
    if tier != "pip":
        raise InputError(
            f"export of the {tier} tier is not available yet",
            fix="export the pip tier (--tier pip): its pins are what the conda tier installs too",
        )
    return json.dumps(pypi_base_kwargs(project, platform=platform), indent=2, sort_keys=True) + "\n"
