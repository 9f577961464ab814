"""envs/preferences.txt: versions a lock prefers the first time it is resolved.

uv prefers the versions already in a compile's output file. For a lockfile that exists, that is
the lockfile itself (a spec change moves only what it must). For the first lock of a project that
adopted envtiers, `envtiers init` / `envtiers import` writes the team's current versions here
(from their uv.lock, conda-lock.yml or pinned requirements.txt) and the locker seeds the output
file with them instead. The file is deliberately not an input of any hash: it only decides which
of the allowed versions the first resolution picks, and the committed lock records the result.
"""

from __future__ import annotations

from envtiers.settings import Project

FILENAME = "preferences.txt"


def seed(project: Project) -> str | None:
    """The text to seed a first lock's output file with, or None when there is no preference file."""
    path = project.envs_dir / FILENAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text
