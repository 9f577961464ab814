"""`envtiers lock --tier pip`: resolve each lock set with uv, skip the ones whose inputs are unchanged.

A *lock set* is one output file and the inputs that produce it:
- runtime: envs/requirements.in (+ envs/overrides.txt) for each target platform;
- dev: envs/dev-requirements.in for each platform, constrained by that platform's runtime lock so
  the project's .venv pins the runtime packages at exactly the runtime versions;
- tools: envs/tools.in, one universal lock used by the Makefile to bootstrap uv itself.

All sets are resolved into a staging folder first and moved into place only when every one
succeeded, so a failure leaves the committed locks untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envtiers.errors import EnvtiersError, IndexUnreachableError, InputError, LockfileFormatError, ResolutionError
from envtiers.fsutil import file_lock, staging_dir
from envtiers.hashing import input_hash
from envtiers.pip import lockfile, preferences
from envtiers.pip.uv import Uv
from envtiers.platforms import get_platform
from envtiers.settings import Project
from envtiers.spec import read_spec
from envtiers.tiers import LockResult

log = logging.getLogger(__name__)

RESOLVER_OPTIONS = {"resolver": "uv", "only_binary": ":all:", "generate_hashes": True}


@dataclass
class LockSet:
    kind: str  # runtime | dev | tools
    platform: str  # platform name or "universal"
    output: Path
    spec: Path
    overrides: Path | None = None
    constraint: LockSet | None = None
    staged: Path | None = field(default=None, repr=False)
    body: str | None = field(default=None, repr=False)


def lock_sets(project: Project, *, platforms: Sequence[str] | None = None) -> list[LockSet]:
    """The lock sets of `project`, in dependency order (runtime before dev)."""
    chosen = list(platforms or project.platforms)
    for name in chosen:
        get_platform(name)
        if name not in project.platforms:
            raise InputError(
                f"{name} is not a target platform of this project",
                fix=f"add it to [project] platforms in envs/tiers.toml (now: {', '.join(project.platforms)})",
            )
    pip = project.pip
    sets: list[LockSet] = []
    runtime = {}
    for name in chosen:
        runtime[name] = LockSet("runtime", name, runtime_lock_path(project, name), pip.spec, pip.overrides)
        sets.append(runtime[name])
    if pip.dev_spec is not None:
        for name in chosen:
            sets.append(LockSet("dev", name, dev_lock_path(project, name), pip.dev_spec, pip.overrides, runtime[name]))
    if pip.tools_spec is not None and platforms is None:
        sets.append(LockSet("tools", "universal", project.lockfiles_dir / "tools.txt", pip.tools_spec))
    return sets


def runtime_lock_path(project: Project, platform: str) -> Path:
    return project.pip_lock_dir / f"{platform}.txt"


def dev_lock_path(project: Project, platform: str) -> Path:
    return project.pip_lock_dir / "dev" / f"{platform}.txt"


def expected_input_hash(project: Project, lock_set: LockSet, *, constraint_body: str | None = None) -> str:
    """The input hash a fresh lock of `lock_set` carries. Reads the spec files (SpecError if bad).

    For a dev set the constraint is the runtime lock's body: pass it when it is staged and not
    yet on disk.
    """
    spec = read_spec(lock_set.spec, display=project.rel(lock_set.spec))
    overrides = (
        read_spec(lock_set.overrides, display=project.rel(lock_set.overrides), allow_empty=True)
        if lock_set.overrides
        else None
    )
    parts: dict[str, object] = {
        "tier": "pip",
        "kind": lock_set.kind,
        "platform": lock_set.platform,
        "python": project.python,
        "spec": spec.normalised(),
        "overrides": overrides.normalised() if overrides else [],
        "options": RESOLVER_OPTIONS,
    }
    if lock_set.constraint is not None:
        if constraint_body is None:
            constraint_body = lockfile.read(lock_set.constraint.output).body
        parts["constraint"] = sorted(f"{p.name}=={p.version}" for p in lockfile.parse_body(constraint_body))
    return input_hash(parts)


def lock(
    project: Project,
    *,
    platforms: Sequence[str] | None = None,
    force: bool = False,
    upgrade: bool = False,
    uv: Uv | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> list[LockResult]:
    """Bring every lock set up to date. Returns one result per set.

    Raises ResolutionError (and subclasses) when uv cannot lock; nothing is written then.
    """
    sets = lock_sets(project, platforms=platforms)
    project.lockfiles_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(project.lockfiles_dir / ".envtiers-lock", what="locking"):
        staging = staging_dir(project.lockfiles_dir)
        try:
            results = _resolve_all(
                project, sets, staging, force=force or upgrade, upgrade=upgrade, uv=uv, report=report
            )
            for lock_set in sets:
                if lock_set.staged is not None:
                    lock_set.output.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(lock_set.staged, lock_set.output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return results


def _resolve_all(
    project: Project,
    sets: list[LockSet],
    staging: Path,
    *,
    force: bool,
    upgrade: bool,
    uv: Uv | None,
    report: Callable[[str], None],
) -> list[LockResult]:
    results = []
    for lock_set in sets:
        started = time.perf_counter()
        constraint_body = lock_set.constraint.body if lock_set.constraint else None
        wanted = expected_input_hash(project, lock_set, constraint_body=constraint_body)
        current = _current_lock(lock_set.output)
        if current is not None and not force and current.header.input_hash == wanted and current.body_intact:
            lock_set.body = current.body
            results.append(LockResult(lock_set.output, False, len(current.pins), time.perf_counter() - started))
            report(f"{project.rel(lock_set.output)}: up to date")
            continue
        uv = uv or Uv()
        report(f"{project.rel(lock_set.output)}: resolving for {lock_set.platform} ...")
        body = _compile(project, lock_set, staging, previous=current, upgrade=upgrade, uv=uv)
        lock_set.body = body
        text = lockfile.render(
            kind=lock_set.kind, platform=lock_set.platform, python=project.python, input_hash=wanted, body=body
        )
        staged = staging / f"{lock_set.kind}-{lock_set.platform}.final"
        staged.write_text(text)
        lock_set.staged = staged
        packages = len(lockfile.parse_body(body))
        results.append(LockResult(lock_set.output, True, packages, time.perf_counter() - started))
        report(f"{project.rel(lock_set.output)}: locked {packages} packages")
    return results


def _current_lock(path: Path) -> lockfile.PipLock | None:
    try:
        return lockfile.read(path)
    except LockfileFormatError:
        return None


def _compile(
    project: Project,
    lock_set: LockSet,
    staging: Path,
    *,
    previous: lockfile.PipLock | None,
    upgrade: bool,
    uv: Uv,
) -> str:
    out = staging / f"{lock_set.kind}-{lock_set.platform}.txt"
    if previous is not None and not upgrade:
        # uv prefers the versions already in the output file: a spec change moves only what it must.
        out.write_text(previous.body)
    elif previous is None and not upgrade and (imported := preferences.seed(project)) is not None:
        out.write_text(imported)  # a first lock keeps the versions imported by `envtiers init`
    args = [
        project.rel(lock_set.spec),
        "--output-file",
        str(out),
        "--python-version",
        project.python,
        "--generate-hashes",
        "--only-binary",
        ":all:",
        "--no-header",
        "--quiet",
    ]
    if lock_set.platform == "universal":
        args.append("--universal")
    else:
        args += ["--python-platform", get_platform(lock_set.platform).uv_platform]
    if lock_set.overrides is not None:
        args += ["--override", project.rel(lock_set.overrides)]
    constraint_path = None
    if lock_set.constraint is not None:
        constraint_path = staging / f"constraint-{lock_set.platform}.txt"
        constraint_path.write_text(lock_set.constraint.body or "")
        args += ["--constraint", str(constraint_path)]
    if project.pip.index_url:
        args += ["--index-url", project.pip.index_url]
    for link in project.pip.find_links:
        args += ["--find-links", link]
    if upgrade:
        args.append("--upgrade")
    try:
        uv.compile(args, platform=lock_set.platform, cwd=project.root)
    except ResolutionError as error:
        # "not found" from an index URL that is no index (a typo, a 404 proxy) is not the
        # package's spelling: say what the URL answers.
        from envtiers.index import DEFAULT_INDEX, probe  # urllib: imported only on this path

        problem = probe(project.pip.index_url or DEFAULT_INDEX) if "not found" in error.headline else None
        if problem is None:
            raise
        raise IndexUnreachableError(
            f"{problem} (locking for {lock_set.platform})",
            fix="correct [pip] index_url in envs/tiers.toml (ENVTIERS_INDEX_URL and --index-url override it)",
        ) from None
    body = out.read_text()
    if constraint_path is not None and lock_set.constraint is not None:
        # Annotations name the constraint file: show the committed path, not the staging one
        # (uv writes it relative to its working directory, the project root).
        for staged_name in (str(constraint_path), project.rel(constraint_path)):
            body = body.replace(staged_name, project.rel(lock_set.constraint.output))
    if not body.strip():
        raise EnvtiersError(f"uv produced an empty lock for {project.rel(lock_set.output)}")
    return body
