"""`envtiers init` and `envtiers import`: set up envtiers in an existing project (envtiers.scaffold)."""

from __future__ import annotations

import argparse

from envtiers.commands import say
from envtiers.settings import Project


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from envtiers.scaffold.cli import add_parsers

    add_parsers(subparsers, init_handler=init, import_handler=import_)


def init(project: Project | None, args: argparse.Namespace) -> int:
    from envtiers.scaffold.cli import run_init

    return run_init(args, say=say)


def import_(project: Project, args: argparse.Namespace) -> int:
    from envtiers.scaffold.cli import run_import

    return run_import(project, args, say=say)
