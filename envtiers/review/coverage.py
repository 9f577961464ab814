"""`envtiers check --verbose`: what each platform's lock covers.

Per platform: how many packages are locked, their total download size (from the index, cached; see
`envtiers.review.sizes`), and the packages locked for some platforms but not others (a wheel only
Linux has, such as the `nvidia-*` CUDA libraries, or a macOS-only dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

from envtiers.review.locked import load_locked
from envtiers.review.sizes import FileCatalog, human
from envtiers.settings import Project


@dataclass(frozen=True)
class PlatformCoverage:
    platform: str
    path: str
    packages: int
    download: int | None
    unknown_sizes: int
    only_here: tuple[str, ...]  # locked on this platform and missing from another


def coverage(project: Project, *, sizes: bool = True) -> tuple[list[PlatformCoverage], str | None]:
    """The coverage of every pip lock, and why sizes are incomplete (None when they are complete)."""
    sets = load_locked(project, tiers=("pip",)).sets
    catalog = FileCatalog(project, offline=not sizes)
    names = {s.platform: {p.name for p in s.packages} for s in sets}
    every = set.intersection(*names.values()) if names else set()
    result = []
    for locked in sets:
        found = catalog.sizes(locked.platform, locked.packages)
        known = [v for v in found.values() if v is not None]
        result.append(
            PlatformCoverage(
                platform=locked.platform,
                path=locked.path,
                packages=len(locked.packages),
                download=sum(known) if known else None,
                unknown_sizes=len(found) - len(known),
                only_here=tuple(sorted(names[locked.platform] - every)),
            )
        )
    return result, catalog.unreachable or (None if sizes else "sizes not looked up (offline)")


def render(rows: list[PlatformCoverage], note: str | None) -> str:
    lines = []
    for row in rows:
        unknown = f" ({row.unknown_sizes} sizes unknown)" if row.unknown_sizes else ""
        lines.append(f"{row.path}: {row.platform}: {row.packages} packages, download {human(row.download)}{unknown}")
        if row.only_here:
            lines.append(f"  only on {row.platform}: {', '.join(row.only_here)}")
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)
