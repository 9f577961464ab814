"""The one place that drives py-rattler: async calls run to completion, failures become envtiers errors.

py-rattler solves, fetches repodata and installs in-process (no conda binary, nothing downloaded
behind the user's back). Every call gets explicit cache folders and explicit virtual packages, so a
result never depends on the host or on `~/.cache/rattler`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from envtiers.errors import EnvironmentBuildError, IndexUnreachableError, ResolutionError, ToolError

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNREACHABLE = ("error sending request", "Connection refused", "dns error", "tcp connect error", "failed to fetch")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called from inside an event loop (a notebook): run on a fresh loop in a worker thread.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def virtual_packages(declared: Mapping[str, str]) -> list[Any]:
    """rattler's GenericVirtualPackage for each `{name: "version"}` or `{name: "version build"}`."""
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    packages = []
    for name, text in sorted(declared.items()):
        version, _, build = text.partition(" ")
        packages.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0")))
    return packages


def solve(
    *,
    channels: Sequence[str],
    specs: Sequence[str],
    platform: str,
    virtual: Mapping[str, str],
    cache_dir: Path,
) -> list[Any]:
    """Solve `specs` for `platform` (+ noarch) from `channels` (URLs). Returns RepoDataRecords.

    Raises ResolutionError with the solver's explanation when no solution exists, and
    IndexUnreachableError when a channel cannot be read.
    """
    from rattler import Channel, Gateway, Subdir
    from rattler import solve as rattler_solve
    from rattler.exceptions import SolverError

    log.info("rattler solve %s for %s from %s", list(specs), platform, list(channels))
    started = time.monotonic()

    async def run() -> list[Any]:
        gateway = Gateway(cache_dir=cache_dir / "repodata")
        return await rattler_solve(
            sources=[Channel(url) for url in channels],
            specs=list(specs),
            gateway=gateway,
            platforms=[Subdir(platform), Subdir("noarch")],
            virtual_packages=virtual_packages(virtual),
        )

    try:
        records = _run(run())
    except SolverError as error:
        explanation = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise ResolutionError(
            f"the conda specs cannot be satisfied for {platform}: {explanation}",
            fix="relax or correct the specs in envs/environment.yml (or the virtual packages in [conda] of "
            "envs/tiers.toml)",
        ) from None
    except Exception as error:
        raise _channel_error(error, what=f"solving for {platform}") from None
    log.info("solved %d records in %.2fs", len(records), time.monotonic() - started)
    return list(records)


def query(*, channels: Sequence[str], platform: str, names: Sequence[str], cache_dir: Path) -> list[Any]:
    """Every record of `names` the channels list for `platform` and noarch (no dependencies)."""
    from rattler import Channel, Gateway, Subdir

    async def run() -> list[Any]:
        gateway = Gateway(cache_dir=cache_dir / "repodata")
        result = await gateway.query(
            [Channel(url) for url in channels], [Subdir(platform), Subdir("noarch")], list(names), recursive=False
        )
        return [record for per_channel in result for record in per_channel]

    try:
        return _run(run())
    except Exception as error:
        raise _channel_error(error, what=f"reading the channel for {platform}") from None


def install(records: Sequence[Any], *, prefix: Path, cache_dir: Path) -> None:
    """Link `records` into `prefix`; packages are verified against the records' sha256.

    Raises EnvironmentBuildError when a download does not match, or the install fails.
    """
    from rattler import install as rattler_install

    log.info("rattler install %d packages into %s", len(records), prefix)
    try:
        _run(
            rattler_install(
                list(records),
                target_prefix=str(prefix),
                cache_dir=cache_dir / "pkgs",
                show_progress=False,
                execute_link_scripts=False,
            )
        )
    except Exception as error:
        text = _one_line(error)
        if "hash" in text.lower() or "sha256" in text.lower() or "mismatch" in text.lower():
            raise EnvironmentBuildError(
                f"a conda package does not match the hash recorded in lockfiles/conda-lock.yml: {text}",
                fix="the channel (or its mirror) served different bytes than at lock time; if that is "
                "expected, run `envtiers lock --tier conda --force` and review the diff",
            ) from None
        if any(marker.lower() in text.lower() for marker in _UNREACHABLE):
            raise IndexUnreachableError(
                f"the conda channel could not be reached while installing: {text}",
                fix="check the network, or [conda.mirrors] in envs/tiers.toml",
            ) from None
        raise EnvironmentBuildError(f"installing the conda packages failed: {text}") from None


def index(channel_dir: Path) -> None:
    """Write repodata.json for every subdir of a folder of packages (a local channel)."""
    from rattler.index import index_fs

    try:
        _run(index_fs(channel_dir, write_zst=False, write_shards=False))
    except Exception as error:
        raise ToolError(f"indexing {channel_dir} failed: {_one_line(error)}") from None


def _channel_error(error: Exception, *, what: str) -> Exception:
    text = _one_line(error)
    if any(marker.lower() in text.lower() for marker in _UNREACHABLE) or "404" in text or "not found" in text.lower():
        return IndexUnreachableError(
            f"a conda channel could not be read while {what}: {text}",
            fix="check the network and the channels of envs/environment.yml, or [conda.mirrors] in envs/tiers.toml",
        )
    return ToolError(f"py-rattler failed while {what}: {text}")
