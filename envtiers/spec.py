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
        # utf-8-sig: editors on Windows start files with a byte-order mark; it is not a requirement.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(f"{shown} not found", fix=f"create {shown} with one requirement per line") from None
    except IsADirectoryError:
        raise SpecError(
            f"{shown} is a folder, not a requirements file",
            fix="point [pip] spec (or dev_spec, tools_spec, overrides) in envs/tiers.toml at a file",
        ) from None
    except UnicodeDecodeError as exc:
        at = text_line_of(path.read_bytes(), exc.start)
        raise SpecError(
            f"{shown}:{at}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", fix=f"save {shown} as UTF-8"
        ) from None
    except OSError as exc:
        raise SpecError(f"{shown} cannot be read: {exc.strerror}", fix=f"check that {shown} is readable") from None
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
            raise SpecError(
                f"{shown}:{number}: not a valid requirement: {line!r} ({reason})",
                fix=_requirement_fix(line, shown, number),
            ) from None
        if req.url:
            raise SpecError(
                f"{shown}:{number}: direct URL requirements cannot be locked for other platforms",
                fix=f"publish {req.name} to your index and require it by version",
            )
        requirements.append(req)
    if not requirements and not allow_empty:
        raise SpecError(f"{shown} lists no requirements", fix=f"add the project's direct dependencies to {shown}")
    return Spec(path=path, requirements=tuple(requirements))


_MARKER_VARIABLES = (
    "sys_platform",
    "platform_machine",
    "platform_system",
    "python_version",
    "python_full_version",
    "os_name",
    "implementation_name",
    "platform_release",
    "extra",
)


def _requirement_fix(line: str, shown: str, number: int) -> str:
    """The fix for an unparsable requirement: a misspelt marker variable is named, with the right one."""
    import difflib
    import re

    _, sep, marker = line.partition(";")
    if sep:
        for word in re.findall(r"[A-Za-z_]+", marker):
            if word in _MARKER_VARIABLES or word in ("and", "or", "in", "not"):
                continue
            close = difflib.get_close_matches(word, _MARKER_VARIABLES, n=1)
            if close:
                return f"{shown}:{number}: write {close[0]!r} instead of {word!r} in the marker"
    return f'{shown}:{number}: write it as `name`, `name==1.2` or `name>=1.2; sys_platform == "linux"` (PEP 508)'


def text_line_of(data: bytes, offset: int) -> int:
    """The 1-based line number of byte `offset` in `data`."""
    return data.count(b"\n", 0, offset) + 1
