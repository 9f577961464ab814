"""Writing scaffolded files without losing anything: a file that exists with other content is
never replaced silently. `apply` writes nothing at all when any file differs (unless `force`),
and says how each one differs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envtiers.errors import InputError
from envtiers.fsutil import atomic_write_text


@dataclass(frozen=True)
class Change:
    path: str  # relative to the project root
    status: str  # "new" | "unchanged" | "differs" | "replaced"
    diff: str = ""


class ConflictError(InputError):
    """Files exist with other content than `envtiers init` would write: nothing was written."""

    def __init__(self, conflicts: list[Change], *, command: str) -> None:
        names = ", ".join(c.path for c in conflicts)
        super().__init__(
            f"{len(conflicts)} file(s) exist with other content, nothing was written: {names}",
            fix=f"keep your edits (merge what you need from the diff above by hand), or rerun `{command} --force` "
            "to replace them",
        )
        self.conflicts = conflicts

    def render(self) -> str:
        return "".join(c.diff for c in self.conflicts) + super().render()


def plan(root: Path, files: Mapping[str, str], *, command: str = "envtiers init") -> list[Change]:
    """How each of `files` compares with what is on disk under `root`."""
    changes = []
    for name, text in files.items():
        path = root / name
        if not path.exists():
            changes.append(Change(name, "new"))
            continue
        try:
            current = path.read_text()
        except (OSError, UnicodeDecodeError):
            current = ""
        if current == text:
            changes.append(Change(name, "unchanged"))
        else:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{name} (yours)",
                tofile=f"{name} ({command})",
            )
            changes.append(
                Change(name, "differs", "".join(line if line.endswith("\n") else line + "\n" for line in diff))
            )
    return changes


def apply(root: Path, files: Mapping[str, str], *, force: bool = False, command: str = "envtiers init") -> list[Change]:
    """Write the new files (and with `force` the differing ones, atomically each).

    Raises ConflictError, having written nothing, when a file differs and `force` is off."""
    changes = plan(root, files, command=command)
    conflicts = [c for c in changes if c.status == "differs"]
    if conflicts and not force:
        raise ConflictError(conflicts, command=command)
    done = []
    for change in changes:
        if change.status in ("new", "differs"):
            atomic_write_text(root / change.path, files[change.path])
        done.append(Change(change.path, "replaced", change.diff) if change.status == "differs" else change)
    return done
