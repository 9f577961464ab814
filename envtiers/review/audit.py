"""`envtiers audit`: every pinned package of every tier and platform against OSV advisories.

Exit codes (decided by `AuditReport.exit_code`, turned into the process status by the CLI):
    0  no locked version is affected (or every finding is ignored by an unexpired entry)
    1  a locked version is affected, or an ignore entry has expired
    2  the audit could not run: no database, an unreadable record, the service unreachable, bad settings

The ignore list lives in `envs/tiers.toml`; each entry needs a reason and an expiry date, so
nothing is ignored for ever without someone deciding again:

    [[audit.ignore]]
    id = "GHSA-xxxx-xxxx-xxxx"      # the advisory's id or any of its aliases
    reason = "only the CLI is affected; we import the library"
    expires = 2026-06-30
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envtiers.errors import EXIT_FAILED, EXIT_OK, SettingsError
from envtiers.review.locked import LockedPackage, LockedSet, load_locked
from envtiers.review.osv import PYPI, Advisory, FolderDatabase, OsvService
from envtiers.settings import SETTINGS_FILE, Project

DB_VARIABLE = "ENVTIERS_AUDIT_DB"


@dataclass(frozen=True)
class IgnoreEntry:
    id: str
    reason: str
    expires: dt.date

    def expired(self, today: dt.date) -> bool:
        return self.expires < today


@dataclass(frozen=True)
class AuditSettings:
    db: Path | None  # the default offline database ([audit] db, relative to the project root)
    osv_url: str | None
    ignore: tuple[IgnoreEntry, ...]


def load_audit_settings(project: Project) -> AuditSettings:
    """`[audit]` of envs/tiers.toml. Raises SettingsError for an entry without a reason or a date."""
    raw = project.raw.get("audit", {})
    if not isinstance(raw, dict):
        raise SettingsError(f"{SETTINGS_FILE}: [audit] must be a table")
    unknown = sorted(set(raw) - {"db", "osv_url", "ignore"})
    if unknown:
        raise SettingsError(
            f"{SETTINGS_FILE}: unknown key(s) in [audit]: {', '.join(unknown)}", fix="use db, osv_url, ignore"
        )
    entries = []
    for number, item in enumerate(raw.get("ignore", ()), start=1):
        where = f"{SETTINGS_FILE}: [[audit.ignore]] entry {number}"
        if not isinstance(item, dict):
            raise SettingsError(f"{where} must be a table")
        vuln_id, reason, expires = item.get("id"), item.get("reason"), item.get("expires")
        if not isinstance(vuln_id, str) or not vuln_id.strip():
            raise SettingsError(f"{where} has no id", fix='add id = "GHSA-..." (the advisory id or an alias)')
        if not isinstance(reason, str) or not reason.strip():
            raise SettingsError(f"{where} ({vuln_id}) has no reason", fix='add reason = "why it does not apply"')
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if not isinstance(expires, dt.date):
            raise SettingsError(
                f"{where} ({vuln_id}) needs an expiry date", fix="add expires = 2026-06-30 (a TOML date, unquoted)"
            )
        entries.append(IgnoreEntry(vuln_id.strip(), reason.strip(), expires))
    db = raw.get("db")
    return AuditSettings(
        db=Path(os.path.normpath(project.root / str(db))) if db else None,
        osv_url=str(raw["osv_url"]) if raw.get("osv_url") else None,
        ignore=tuple(entries),
    )


@dataclass(frozen=True)
class Finding:
    advisory: Advisory
    package: LockedPackage
    fixed: str | None
    where: tuple[str, ...]  # "pip linux-64", "conda osx-arm64", ...
    ignored_by: IgnoreEntry | None = None

    def render(self) -> str:
        aliases = f" ({', '.join(self.advisory.aliases)})" if self.advisory.aliases else ""
        fix = f"fixed in {self.fixed}" if self.fixed else "no fixed version known"
        text = (
            f"{self.advisory.id}{aliases}: {self.package.name} {self.package.version}: {fix} [{', '.join(self.where)}]"
        )
        if self.ignored_by:
            text += f"\n  ignored until {self.ignored_by.expires}: {self.ignored_by.reason}"
        elif self.advisory.summary:
            text += f"\n  {self.advisory.summary}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.advisory.id,
            "aliases": list(self.advisory.aliases),
            "package": self.package.name,
            "manager": self.package.manager,
            "version": self.package.version,
            "fixed": self.fixed,
            "where": list(self.where),
            "summary": self.advisory.summary,
            "ignored": None
            if self.ignored_by is None
            else {"reason": self.ignored_by.reason, "expires": self.ignored_by.expires.isoformat()},
        }


@dataclass(frozen=True)
class AuditReport:
    source: str
    sets: tuple[LockedSet, ...]
    findings: tuple[Finding, ...]
    expired: tuple[IgnoreEntry, ...] = ()
    skipped: tuple[str, ...] = field(default=())

    @property
    def vulnerable(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.ignored_by is None)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.vulnerable or self.expired else EXIT_OK

    def render(self) -> str:
        lines = [f.render() for f in self.vulnerable]
        lines += [f.render() for f in self.findings if f.ignored_by is not None]
        for entry in self.expired:
            lines.append(
                f"{SETTINGS_FILE}: the ignore entry for {entry.id} expired on {entry.expires} ({entry.reason})\n"
                "  fix: upgrade the package past the advisory, or decide again and move `expires` forward"
            )
        packages = sum(len(s.packages) for s in self.sets)
        ignored = len(self.findings) - len(self.vulnerable)
        lines.append(
            f"{len(self.vulnerable)} vulnerable pin(s), {ignored} ignored, in {packages} pins of {len(self.sets)} "
            f"locked set(s) ({', '.join(s.label for s in self.sets)}); advisories from {self.source}"
        )
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sets": [s.label for s in self.sets],
            "findings": [f.as_json() for f in self.findings],
            "expired_ignores": [
                {"id": e.id, "expires": e.expires.isoformat(), "reason": e.reason} for e in self.expired
            ],
            "exit_code": self.exit_code,
        }


def audit(
    project: Project,
    *,
    tiers: Sequence[str] | None = None,
    db: Path | None = None,
    service: str | None = None,
    today: dt.date | None = None,
) -> AuditReport:
    """Audit the committed locks. `service="osv"` asks OSV's API; otherwise the folder `db` (default:
    ENVTIERS_AUDIT_DB, then [audit] db) is read offline.

    Raises InputError (no or unreadable database, bad settings), AdvisoryServiceError (service down).
    """
    settings = load_audit_settings(project)
    loaded = load_locked(project, tiers=tiers)
    return audit_sets(
        loaded.sets, settings=settings, db=db, service=service, today=today, skipped=tuple(loaded.skipped)
    )


def audit_sets(
    sets: Sequence[LockedSet],
    *,
    settings: AuditSettings,
    db: Path | None = None,
    service: str | None = None,
    today: dt.date | None = None,
    skipped: tuple[str, ...] = (),
) -> AuditReport:
    """The audit of already loaded sets (`envtiers diff` audits both sides of a change with it)."""
    from envtiers.errors import InputError

    today = today or dt.date.today()
    queries = sorted({_query(p) for s in sets for p in s.packages})
    if service is not None:
        if service != "osv":
            raise InputError(f"unknown advisory service {service!r}", fix="use --service osv")
        client = OsvService(settings.osv_url)
        source = f"OSV ({client.url})"
        candidates = client.matching(queries)
    else:
        folder = db or (Path(os.environ[DB_VARIABLE]) if os.environ.get(DB_VARIABLE) else None) or settings.db
        if folder is None:
            raise InputError(
                "no advisory database given",
                fix=f"pass --db PATH (an OSV folder), set {DB_VARIABLE} or [audit] db, or use --service osv",
            )
        database = _database(folder.resolve())
        source = str(folder)
        by_name = database.advisories({name for _, name, _ in queries})
        candidates = {q: by_name[_canonical(q[1])] for q in queries}
    return AuditReport(
        source=source,
        sets=tuple(sets),
        findings=tuple(_findings(sets, candidates, settings.ignore, today)),
        expired=tuple(e for e in settings.ignore if e.expired(today)),
        skipped=skipped,
    )


@functools.lru_cache(maxsize=4)
def _database(folder: Path) -> FolderDatabase:
    # One per folder and process: `diff` audits both sides of a change, and reads each record once.
    return FolderDatabase(folder)


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _query(package: LockedPackage) -> tuple[str, str, str]:
    # conda records are looked up by their name as a PyPI name too: Python packages keep it on conda-forge
    # (only those that depend on python are matched against PyPI advisories, see LockedPackage).
    return (PYPI, package.name, package.version)


def _findings(
    sets: Iterable[LockedSet],
    candidates: dict[tuple[str, str, str], list[Advisory]],
    ignore: Sequence[IgnoreEntry],
    today: dt.date,
) -> list[Finding]:
    grouped: dict[tuple[str, str, str, str], tuple[Advisory, LockedPackage, str | None, list[str]]] = {}
    for locked in sets:
        for package in locked.packages:
            for advisory in candidates.get(_query(package), ()):
                hit, fixed = False, None
                if package.python_package:
                    hit, fixed = advisory.matches(ecosystem=PYPI, name=package.name, version=package.version)
                if not hit and package.manager == "conda":
                    hit, fixed = advisory.matches(ecosystem="conda", name=package.name, version=package.version)
                if not hit:
                    continue
                key = (advisory.id, package.manager, package.name, package.version)
                grouped.setdefault(key, (advisory, package, fixed, []))[3].append(locked.label)
    findings = []
    for advisory, package, fixed, where in grouped.values():
        names = {advisory.id, *advisory.aliases}
        entry = next((e for e in ignore if e.id in names and not e.expired(today)), None)
        findings.append(Finding(advisory, package, fixed, tuple(where), entry))
    return sorted(findings, key=lambda f: (f.package.name, f.package.version, f.advisory.id))
