"""`envtiers export`: a tier's pins for another tool (stock Metaflow @pypi)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envtiers.errors import EXIT_OK
from envtiers.registry import WITH_ENV
from envtiers.settings import Project


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("export", help="print a tier's pins for another tool (stock Metaflow @pypi)")
    parser.add_argument("--tier", choices=WITH_ENV, default=WITH_ENV[0])
    parser.add_argument("--format", choices=("metaflow", "pylock"), default="metaflow")
    parser.add_argument("--platform", default="linux-64", help="whose lock (default linux-64: @batch, @kubernetes)")
    parser.add_argument("--output", type=Path, help="pylock: the file or folder (default: pylock.<platform>.toml)")
    parser.set_defaults(handler=run)


def run(project: Project, args: argparse.Namespace) -> int:
    from envtiers.export import export

    if args.format == "pylock":
        from envtiers.review.cli import cmd_export_pylock

        return cmd_export_pylock(project, args)
    sys.stdout.write(export(project, tier=args.tier, fmt=args.format, platform=args.platform))
    return EXIT_OK
