"""Reading requirement specs (`envs/*.in`, overrides): PEP 508 lines, comments, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envtiers.errors import SpecError


@dataclass(frozen=True)
class Spec:
    path: Path
    requirements: tuple[Requirement, ...]

    def normalised(self) -> list[str]:
        """Requirements in a canonical, order-free text form: what the input hash covers."""
        return sorted(normalise(req) for req in self.requirements)


def normalise(req: Requirement) -> str:
    name = canonicalize_name(req.name)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    specifier = ",".join(sorted(str(s) for s in req.specifier))
    url = f" @ {req.url}" if req.url else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{name}{extras}{specifier}{url}{marker}"


def read_spec(path: Path, *, display: str | None = None, allow_empty: bool = False) -> Spec:
    """Parse a requirements spec. Raises SpecError naming the file and line of any bad entry."""
    shown = display or str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{shown} not found", fix=f"create {shown} with one requirement per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{shown} cannot be read: {exc}") from None
    requirements = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise SpecError(
                f"{shown}:{number}: options like {line.split()[0]!r} are not allowed in a spec",
                fix="put index settings in envs/tiers.toml ([pip] index_url) and keep only requirements here",
            )
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            # packaging's message draws a caret under the line; the headline keeps only its first line.
            reason = str(exc).splitlines()[0] if str(exc) else "unparsable"
            raise SpecError(f"{shown}:{number}: not a valid requirement: {line!r} ({reason})") from None
        if req.url:
            raise SpecError(
                f"{shown}:{number}: direct URL requirements cannot be locked for other platforms",
                fix=f"publish {req.name} to your index and require it by version",
            )
        requirements.append(req)
    if not requirements and not allow_empty:
        raise SpecError(f"{shown} lists no requirements", fix=f"add the project's direct dependencies to {shown}")
    return Spec(path=path, requirements=tuple(requirements))
