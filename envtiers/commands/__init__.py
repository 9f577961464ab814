"""The `envtiers` subcommands: one module per command, each with `register(subparsers)`.

Adding a command: write `envtiers/commands/<name>.py` with a `register` that adds its parser and
sets `handler=` (a function `(project, args) -> exit code` that calls the library), then add the
module's name to `COMMANDS`. Commands import the library lazily inside their handlers, so
`envtiers check` loads only what checking needs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from envtiers.settings import Project

# The order `envtiers --help` lists them.
COMMANDS = ("init", "lock", "check", "env", "export", "image", "review")

Handler = Callable[[Project, argparse.Namespace], int]


def register_all(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name in COMMANDS:
        importlib.import_module(f"envtiers.commands.{name}").register(subparsers)


def say(message: str) -> None:
    """A progress line on stderr (stdout carries only what scripts read)."""
    print(message, file=sys.stderr, flush=True)
