"""Target platforms, named as conda subdirs, and what each means to uv and to PEP 508 markers."""

from __future__ import annotations

import platform as _platform
import sys
from dataclasses import dataclass

from envtiers.errors import InputError

# The oldest systems the locks target unless [conda.virtual_packages] says otherwise: the one place
# the glibc and macOS floors are written (uv's --python-platform, the conda tier's virtual packages,
# the wheel tags of the conda lock's pip entries and of the image's wheelhouse all derive from it).
GLIBC_FLOOR = "2.28"
MACOS_FLOOR = "13.0"


def platform_tag_names(platform: str, *, glibc: str = GLIBC_FLOOR, osx: str = MACOS_FLOOR) -> list[str]:
    """The wheel platform tags a `platform` system at (or above) the floors accepts, best first."""
    from packaging import tags

    if platform.startswith("linux"):
        arch = "x86_64" if platform == "linux-64" else "aarch64"
        parts = glibc.split(".")
        top = int(parts[1]) if len(parts) > 1 else 28
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        names = []
        for minor in range(top, 4, -1):
            names.append(f"manylinux_2_{minor}_{arch}")
            if minor in legacy:
                names.append(f"{legacy[minor]}_{arch}")
        return [*names, f"linux_{arch}"]
    if platform.startswith("osx"):
        arch = "arm64" if platform == "osx-arm64" else "x86_64"
        version = osx.split(".")
        return list(tags.mac_platforms((int(version[0]), int(version[1]) if len(version) > 1 else 0), arch))
    raise InputError(f"no wheel tags known for platform {platform}", fix="use linux-64 or osx-arm64")


_MANYLINUX = "manylinux_" + GLIBC_FLOOR.replace(".", "_")


@dataclass(frozen=True)
class Platform:
    name: str  # conda subdir name, used in lockfile paths
    uv_platform: str  # uv's --python-platform
    sys_platform: str
    platform_system: str
    platform_machine: str

    def marker_environment(self, python: str) -> dict[str, str]:
        """The PEP 508 marker environment of this platform for a `python` like '3.11'."""
        parts = python.split(".")
        full = python if len(parts) == 3 else f"{python}.0"
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": "posix",
            "platform_machine": self.platform_machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": self.platform_system,
            "platform_version": "",
            "python_full_version": full,
            "python_version": ".".join(parts[:2]),
            "sys_platform": self.sys_platform,
        }


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("linux-64", f"x86_64-{_MANYLINUX}", "linux", "Linux", "x86_64"),
        Platform("linux-aarch64", f"aarch64-{_MANYLINUX}", "linux", "Linux", "aarch64"),
        Platform("osx-arm64", "aarch64-apple-darwin", "darwin", "Darwin", "arm64"),
        Platform("osx-64", "x86_64-apple-darwin", "darwin", "Darwin", "x86_64"),
    )
}


def host_platform_name() -> str:
    machine = _platform.machine().lower()
    if sys.platform.startswith("linux"):
        name = {"x86_64": "linux-64", "amd64": "linux-64", "aarch64": "linux-aarch64"}.get(machine)
    elif sys.platform == "darwin":
        name = {"arm64": "osx-arm64", "x86_64": "osx-64"}.get(machine)
    else:
        name = None
    if name is None:
        raise InputError(f"this host ({sys.platform}/{machine}) is not a supported platform")
    return name


def get_platform(name: str) -> Platform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise InputError(f"unknown platform {name!r}", fix=f"use one of {', '.join(sorted(PLATFORMS))}") from None


def require_host(platform: str | None) -> str:
    """`platform` (default: the host's) when environments for it can be built here.

    Raises InputError for another platform: environments are only built for the host.
    """
    from envtiers.errors import InputError

    host = host_platform_name()
    platform = platform or host
    if platform != host:
        raise InputError(
            f"cannot build a {platform} environment on this {host} host",
            fix=f"build it on a {platform} machine, or use the image tier for linux-64",
        )
    return platform
