"""`envtiers env create|path`: the environment built from a tier's lock."""

from __future__ import annotations

import argparse
from pathlib import Path

from envtiers.commands import say
from envtiers.errors import EXIT_OK
from envtiers.registry import WITH_ENV, get_tier
from envtiers.settings import Project
from envtiers.tiers import EnvOptions


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("env", help="environments built from the lockfiles")
    commands = parser.add_subparsers(dest="env_command", required=True)
    for name, handler, summary in (
        ("create", create, "build (or reuse) the environment and print its interpreter"),
        ("path", path, "print the interpreter of the finished environment for the current lock"),
    ):
        sub = commands.add_parser(name, help=summary)
        sub.add_argument("--tier", choices=WITH_ENV, default=WITH_ENV[0])
        sub.add_argument("--platform", help="must be the host's platform (default)")
        sub.add_argument("--dev", action="store_true", help="include the dev lock (the project's .venv)")
        sub.add_argument("--target", type=Path, help="build here instead of the envtiers cache (empty or ours)")
        if name == "create":
            sub.add_argument("--link-project", action="store_true", help="put the project on sys.path")
        sub.set_defaults(handler=handler)


def _options(args: argparse.Namespace) -> EnvOptions:
    return EnvOptions(
        platform=args.platform,
        target=args.target,
        dev=args.dev,
        link_project=getattr(args, "link_project", False),
    )


def create(project: Project, args: argparse.Namespace) -> int:
    info = get_tier(args.tier).create_env(project, _options(args))
    say(f"{'created' if info.created else 'reused'} {info.prefix}")
    print(info.python)
    return EXIT_OK


def path(project: Project, args: argparse.Namespace) -> int:
    print(get_tier(args.tier).env_path(project, _options(args)))
    return EXIT_OK
