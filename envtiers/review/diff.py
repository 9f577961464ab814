"""`envtiers diff [--base REV] [--format text|markdown|json]`: a lock change as a reviewer wants it.

For each tier and platform: packages added, removed, upgraded and downgraded (with versions), the
download size delta (sizes from the index, cached; conda records' from local repodata), CUDA/GPU
libraries that came in or went away (`nvidia-*`, `cuda-*`), and, given an advisory database, the
advisories the change introduces or fixes. The base is a git revision; the other side is the
working tree. Rendering is pure: `render(diff, fmt)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envtiers.errors import InputError
from envtiers.review.locked import LockedPackage, LockedSet, load_locked
from envtiers.review.names import FORMATS
from envtiers.review.sizes import FileCatalog, human
from envtiers.settings import Project


@dataclass(frozen=True)
class Change:
    name: str
    manager: str
    before: str | None
    after: str | None
    size_delta: int | None = None  # bytes; None when a size on either side is unknown

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        try:
            return "upgraded" if Version(self.after) > Version(self.before) else "downgraded"
        except InvalidVersion:
            return "upgraded" if self.after > self.before else "downgraded"

    @property
    def is_gpu(self) -> bool:
        return LockedPackage(self.name, "", self.manager).is_gpu

    def render(self) -> str:
        versions = {
            "added": f"{self.after}",
            "removed": f"{self.before}",
        }.get(self.kind, f"{self.before} -> {self.after}")
        size = f" ({human(self.size_delta, signed=True)})" if self.size_delta is not None else ""
        gpu = " [CUDA]" if self.is_gpu else ""
        prefix = "conda:" if self.manager == "conda" else ""
        return f"{prefix}{self.name} {versions}{size}{gpu}"


@dataclass(frozen=True)
class SetDiff:
    tier: str
    platform: str
    path: str
    changes: tuple[Change, ...]
    size_delta: int | None
    unknown_sizes: int = 0
    notes: tuple[str, ...] = ()  # base image changes, a lock that appeared or went away
    advisories_introduced: tuple[str, ...] = ()
    advisories_fixed: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.tier} {self.platform}"

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def gpu_added(self) -> list[str]:
        return [c.name for c in self.changes if c.is_gpu and c.kind == "added"]

    @property
    def gpu_removed(self) -> list[str]:
        return [c.name for c in self.changes if c.is_gpu and c.kind == "removed"]

    @property
    def empty(self) -> bool:
        return not (self.changes or self.notes or self.advisories_introduced or self.advisories_fixed)


@dataclass(frozen=True)
class LockDiff:
    base: str
    sets: tuple[SetDiff, ...]
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "notes": list(self.notes),
            "sets": [
                {
                    "tier": s.tier,
                    "platform": s.platform,
                    "path": s.path,
                    "size_delta": s.size_delta,
                    "unknown_sizes": s.unknown_sizes,
                    "notes": list(s.notes),
                    "gpu_added": s.gpu_added,
                    "gpu_removed": s.gpu_removed,
                    "advisories_introduced": list(s.advisories_introduced),
                    "advisories_fixed": list(s.advisories_fixed),
                    "changes": [
                        {
                            "name": c.name,
                            "manager": c.manager,
                            "kind": c.kind,
                            "before": c.before,
                            "after": c.after,
                            "size_delta": c.size_delta,
                        }
                        for c in s.changes
                    ],
                }
                for s in self.sets
            ],
        }


def compare(
    before: Sequence[LockedSet], after: Sequence[LockedSet], *, catalog: FileCatalog | None = None
) -> list[SetDiff]:
    """The per tier/platform difference of two loads (pure apart from the size lookups of `catalog`)."""
    old = {(s.tier, s.platform): s for s in before}
    new = {(s.tier, s.platform): s for s in after}
    result = []
    for key in sorted(set(old) | set(new), key=lambda k: (("pip", "conda", "image").index(k[0]), k[1])):
        a, b = old.get(key), new.get(key)
        notes = []
        if a is None:
            notes.append("new lock")
        elif b is None:
            notes.append("lock removed")
        if a is not None and b is not None and a.base_image != b.base_image:
            notes.append(f"base image {a.base_image} -> {b.base_image}")
        if a is not None and b is not None and a.image != b.image:
            notes.append(f"image {a.image or '(none recorded)'} -> {b.image or '(none recorded)'}")
        ap = a.by_key() if a else {}
        bp = b.by_key() if b else {}
        changed = sorted(k for k in set(ap) | set(bp) if _version_of(ap.get(k)) != _version_of(bp.get(k)))
        platform = key[1]
        sizes_a = catalog.sizes(platform, [ap[k] for k in changed if k in ap]) if catalog else {}
        sizes_b = catalog.sizes(platform, [bp[k] for k in changed if k in bp]) if catalog else {}
        changes, total, unknown = [], 0, 0
        for k in changed:
            delta = _delta(sizes_a.get(k) if k in ap else 0, sizes_b.get(k) if k in bp else 0)
            if delta is None:
                unknown += 1
            else:
                total += delta
            changes.append(Change(k[1], k[0], _version_of(ap.get(k)), _version_of(bp.get(k)), delta))
        path = (b or a).path  # type: ignore[union-attr]
        size: int | None = total
        if changes and (catalog is None or unknown == len(changes)):
            size = None  # nothing known: say unknown, not "0 B"
        result.append(SetDiff(key[0], platform, path, tuple(changes), size, unknown, tuple(notes)))
    return result


def _version_of(package: LockedPackage | None) -> str | None:
    return package.version if package else None


def _delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


def diff(
    project: Project,
    *,
    base: str | None = None,
    tiers: Sequence[str] | None = None,
    db: Path | None = None,
    sizes: bool = True,
) -> LockDiff:
    """Compare the locks at `base` (default: `revision.default_base`) with the working tree.

    With `db` (or ENVTIERS_AUDIT_DB / [audit] db) both sides are audited and the advisories that
    appear or go away are listed. Raises InputError for an unknown revision or a non-repository.
    """
    from envtiers.review.revision import default_base, project_at

    revision = base or default_base(project.root)
    after = load_locked(project, tiers=tiers).sets
    notes: list[str] = []
    with project_at(project, revision) as old_project:
        before = load_locked(old_project, tiers=tiers).sets if old_project else []
        if old_project is None:
            notes.append(f"{revision} has no envs/tiers.toml: every lock is new")
    catalog = FileCatalog(project) if sizes else None
    sets = compare(before, after, catalog=catalog)
    if catalog is not None and catalog.unreachable:
        notes.append(f"download sizes incomplete: {catalog.unreachable}")
    advisories = _advisories(project, before, after, db=db)
    if advisories is None:
        notes.append("advisories not compared: no database (pass --db PATH or set [audit] db)")
    else:
        introduced, fixed = advisories
        sets = [
            SetDiff(
                s.tier,
                s.platform,
                s.path,
                s.changes,
                s.size_delta,
                s.unknown_sizes,
                s.notes,
                tuple(sorted(introduced.get(s.label, ()))),
                tuple(sorted(fixed.get(s.label, ()))),
            )
            for s in sets
        ]
    return LockDiff(revision, tuple(sets), tuple(notes))


def _advisories(
    project: Project, before: Sequence[LockedSet], after: Sequence[LockedSet], *, db: Path | None
) -> tuple[dict[str, set[str]], dict[str, set[str]]] | None:
    import os

    from envtiers.review.audit import DB_VARIABLE, audit_sets, load_audit_settings

    settings = load_audit_settings(project)
    folder = db or (Path(os.environ[DB_VARIABLE]) if os.environ.get(DB_VARIABLE) else None) or settings.db
    if folder is None or not folder.is_dir():
        if db is not None:
            raise InputError(f"advisory database {db} is not a folder", fix="pass --db PATH (an OSV folder)")
        return None

    def found(sets: Sequence[LockedSet]) -> dict[str, set[str]]:
        report = audit_sets(sets, settings=settings, db=folder)
        result: dict[str, set[str]] = {}
        for finding in report.findings:
            for label in finding.where:
                result.setdefault(label, set()).add(
                    f"{finding.advisory.id} ({finding.package.name} {finding.package.version})"
                )
        return result

    old, new = found(before), found(after)
    labels = set(old) | set(new)
    introduced = {label: new.get(label, set()) - old.get(label, set()) for label in labels}
    fixed = {label: old.get(label, set()) - new.get(label, set()) for label in labels}
    return introduced, fixed


def render(result: LockDiff, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.as_json(), indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(result)
    if fmt == "text":
        return _text(result)
    raise InputError(f"unknown format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")


def _summary(s: SetDiff) -> list[str]:
    size = human(s.size_delta, signed=True) + (f" ({s.unknown_sizes} unknown)" if s.unknown_sizes else "")
    gpu = ", ".join([*_few("+", s.gpu_added), *_few("-", s.gpu_removed)]) or "-"
    advisories = f"+{len(s.advisories_introduced)} / -{len(s.advisories_fixed)}"
    return [
        s.label,
        *(str(len(s.of(k))) for k in ("added", "removed", "upgraded", "downgraded")),
        size,
        gpu,
        advisories,
    ]


def _few(sign: str, names: list[str], limit: int = 3) -> list[str]:
    """At most `limit` names for a table cell, then a count: a PR comment stays readable."""
    shown = [f"{sign}{n}" for n in names[:limit]]
    return shown + ([f"{sign}{len(names) - limit} more"] if len(names) > limit else [])


def _text(result: LockDiff) -> str:
    lines = [f"envtiers diff: {result.base} -> working tree"]
    lines += [f"note: {n}" for n in result.notes]
    changed = [s for s in result.sets if not s.empty]
    if not changed:
        lines.append("no lock changes")
    for s in changed:
        label, added, removed, up, down, size, gpu, adv = _summary(s)
        lines.append(
            f"{label} ({s.path}): +{added} -{removed} ^{up} v{down}, download {size}, CUDA {gpu}, advisories {adv}"
        )
        lines += [f"  {note}" for note in s.notes]
        for kind in ("added", "removed", "upgraded", "downgraded"):
            lines += [f"  {kind:<10} {c.render()}" for c in s.of(kind)]
        lines += [f"  advisory introduced: {a}" for a in s.advisories_introduced]
        lines += [f"  advisory fixed: {a}" for a in s.advisories_fixed]
    return "\n".join(lines) + "\n"


def _markdown(result: LockDiff) -> str:
    changed = [s for s in result.sets if not s.empty]
    lines = [f"### Lock changes (`{result.base[:12]}` → working tree)", ""]
    lines += [f"> {n}" for n in result.notes]
    if result.notes:
        lines.append("")
    if not changed:
        return "\n".join([*lines, "No lock changes."]) + "\n"
    lines += [
        "| tier / platform | added | removed | upgraded | downgraded | download Δ | CUDA/GPU "
        "| advisories (new / fixed) |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    lines += ["| " + " | ".join(_summary(s)) + " |" for s in changed]
    for s in changed:
        lines += ["", f"<details><summary>{s.label}: {len(s.changes)} change(s) in <code>{s.path}</code></summary>", ""]
        lines += [f"- {note}" for note in s.notes]
        for kind in ("added", "removed", "upgraded", "downgraded"):
            lines += [f"- {kind}: `{c.render()}`" for c in s.of(kind)]
        lines += [f"- advisory introduced: {a}" for a in s.advisories_introduced]
        lines += [f"- advisory fixed: {a}" for a in s.advisories_fixed]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
