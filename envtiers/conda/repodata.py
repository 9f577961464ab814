"""Locked conda records checked against the channel's own repodata, where it is at hand.

A mirror that is a folder (like the conda-forge snapshot committed in tests/data) holds
`<subdir>/repodata.json`: each locked record's file must be listed there with the same sha256 and
md5. A live channel or a URL mirror is not read: `check` stays offline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from envtiers.conda.lockfile import RELOCK, LockedPackage
from envtiers.conda.spec import CondaSettings, mirror_urls
from envtiers.errors import EnvtiersError
from envtiers.problems import Problem
from envtiers.settings import Project


def check_against_repodata(
    project: Project, settings: CondaSettings, shown: str, packages: Sequence[LockedPackage]
) -> list[Problem]:
    """Problems for conda records whose file the local mirror lists with other hashes, or not at all."""
    try:
        mirrors = mirror_urls(project, settings)
    except EnvtiersError:
        return []  # a missing mirror folder: nothing at hand to compare with
    folders = {channel: _folder(url) for channel, url in mirrors.items()}
    cache: dict[Path, dict[str, Any] | None] = {}
    problems = []
    for package in packages:
        if package.manager != "conda":
            continue
        channel, _, rest = package.url.rpartition("/")
        channel, _, subdir = channel.rpartition("/")
        folder = folders.get(channel)
        if folder is None:
            continue
        listed = _repodata(cache, folder / subdir / "repodata.json")
        if listed is None:
            continue
        record = listed.get(rest)
        where = project.rel(folder / subdir / "repodata.json")
        if record is None:
            problems.append(Problem(shown, f"{package.platform}: {rest} is not listed in {where}", RELOCK))
            continue
        for key in ("sha256", "md5"):
            locked = getattr(package.hash, key)
            if record.get(key) and locked != record[key]:
                problems.append(
                    Problem(
                        shown,
                        f"{package.platform}: {rest} has {key} {locked} in the lock, {record[key]} in {where}",
                        RELOCK,
                    )
                )
    return problems


def _folder(url: str) -> Path | None:
    if not url.startswith("file://"):
        return None
    return Path(url2pathname(urlparse(url).path))


def _repodata(cache: dict[Path, dict[str, Any] | None], path: Path) -> dict[str, Any] | None:
    """file name -> record of one repodata.json (None when it is missing or unreadable)."""
    if path not in cache:
        try:
            data = json.loads(path.read_text())
            cache[path] = {**data.get("packages", {}), **data.get("packages.conda", {})}
        except (OSError, ValueError, AttributeError):
            cache[path] = None
    return cache[path]
