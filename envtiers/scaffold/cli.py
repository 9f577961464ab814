"""The `init` and `import` subcommands: their options and what they print (envtiers.cli wires them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envtiers.errors import EXIT_OK
from envtiers.settings import Project

_STATUS = {"new": "wrote", "unchanged": "unchanged", "replaced": "replaced"}


def add_parsers(commands: Any, *, init_handler: Callable[..., int], import_handler: Callable[..., int]) -> None:
    init = commands.add_parser("init", help="set up envtiers in an existing Metaflow project (never overwrites)")
    init.add_argument("--platforms", default="linux-64,osx-arm64", help="comma-separated conda subdirs to lock for")
    init.add_argument("--tiers", help="comma-separated (default: pip,image, + conda when environment.yml exists)")
    init.add_argument("--extra", action="append", default=[], help="pyproject optional group to add (repeatable)")
    init.add_argument(
        "--python", help="the Python version to pin (default: .python-version, environment.yml, this one)"
    )
    init.add_argument("--registry", help="where `make image` pushes ([image] registry)")
    init.add_argument("--from", dest="import_from", type=Path, help="uv.lock, conda-lock.yml or pinned requirements")
    init.add_argument("--force", action="store_true", help="replace files that exist with other content")
    init.set_defaults(handler=init_handler, needs_project=False)

    imports = commands.add_parser(
        "import", help="keep the versions of a uv.lock / conda-lock.yml / pinned requirements"
    )
    imports.add_argument("lockfile", type=Path)
    imports.add_argument("--force", action="store_true", help="replace envs/preferences.txt if it differs")
    imports.set_defaults(handler=import_handler)


def run_init(args: argparse.Namespace, *, say: Callable[[str], None]) -> int:
    from envtiers.scaffold.init import init

    result = init(
        (args.project or Path.cwd()),
        platforms=[p.strip() for p in args.platforms.split(",") if p.strip()],
        tiers=[t.strip() for t in args.tiers.split(",") if t.strip()] if args.tiers else None,
        extras=args.extra,
        python=args.python,
        index_url=args.index_url,
        registry=args.registry,
        import_from=args.import_from,
        force=args.force,
    )
    sources = result.sources
    say(f"envtiers init: {', '.join(sources.read_from) or 'no dependency files found'}; python {sources.python}")
    say(f"  tiers: {', '.join(result.tiers)}; platforms: {', '.join(args.platforms.split(','))}")
    if result.imported is not None:
        say(f"  kept {len(result.imported.pins)} version(s) from {result.imported.source} for the first lock")
    for change in result.changes:
        say(f"  {_STATUS[change.status]:9} {change.path}")
    for hint in result.hints:
        say(f"  note: {hint}")
    print("Next:")
    for command in result.next_commands:
        print(f"  {command}")
    return EXIT_OK


def run_import(project: Project, args: argparse.Namespace, *, say: Callable[[str], None]) -> int:
    from envtiers.scaffold.init import import_preferences

    imported, changes = import_preferences(project.root, args.lockfile, force=args.force)
    for change in changes:
        say(f"{_STATUS[change.status]} {change.path}: {len(imported.pins)} version(s) from {imported.source}")
    print("Next: envtiers lock   (a lockfile that does not exist yet prefers these versions)")
    return EXIT_OK
