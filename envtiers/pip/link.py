"""An editable install without a build: the project on an environment's sys.path, plus its
console scripts (`[project.scripts]` of its pyproject.toml) in the environment's bin/.

`make venv` uses this for the repository's .venv, so `envtiers` is on the PATH of the activated
.venv and runs the source tree, exactly as `pip install -e .` would, without setuptools, an index
or a build step. Idempotent: an environment reused from the cache is re-linked in place.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from envtiers.errors import InputError
from envtiers.fsutil import atomic_write_text

PTH_NAME = "_envtiers_project.pth"
_ENTRY_POINT = re.compile(r"^(?P<module>[\w.]+):(?P<function>[\w.]+)$")
_SCRIPT = """#!{python}
# Written by envtiers (env create --link-project): {name} = {target}
import sys

from {module} import {head}

if __name__ == "__main__":
    sys.exit({function}())
"""


def console_scripts(root: Path) -> dict[str, str]:
    """`[project.scripts]` of root/pyproject.toml (name -> "module:function"); {} without one.

    Raises InputError for an entry that is not `module:function`."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"pyproject.toml is not valid TOML: {exc}") from None
    scripts = data.get("project", {}).get("scripts", {})
    for name, target in scripts.items():
        if not isinstance(target, str) or not _ENTRY_POINT.match(target.strip()):
            raise InputError(
                f"pyproject.toml: [project.scripts] {name} = {target!r} is not `module:function`",
                fix='write it as name = "package.module:function"',
            )
    return {str(name): str(target).strip() for name, target in scripts.items()}


def render_script(name: str, target: str, *, python: Path) -> str:
    match = _ENTRY_POINT.match(target)
    assert match is not None, target  # validated by console_scripts
    function = match["function"]
    return _SCRIPT.format(
        python=python, name=name, target=target, module=match["module"], head=function.split(".")[0], function=function
    )


def link_project(prefix: Path, root: Path) -> list[Path]:
    """Put `root` on the sys.path of the environment at `prefix` and write its console scripts.

    Returns the scripts written. Raises InputError when the environment has no site-packages."""
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    if not found:
        raise InputError(f"no site-packages folder in {prefix}")
    atomic_write_text(found[0] / PTH_NAME, f"{root}\n")
    written = []
    python = prefix / "bin" / "python"
    for name, target in console_scripts(root).items():
        script = prefix / "bin" / name
        text = render_script(name, target, python=python)
        if not script.is_file() or script.read_text() != text:
            atomic_write_text(script, text)
        script.chmod(0o755)
        written.append(script)
    return written
