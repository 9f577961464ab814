"""The review subcommands (`diff`, `audit`, `sbom`) added to envtiers' parser; thin over the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from envtiers.errors import EXIT_OK, InputError
from envtiers.settings import Project


def cmd_diff(project: Project, args: argparse.Namespace) -> int:
    from envtiers.review.diff import diff, render

    result = diff(project, base=args.base, tiers=args.tier, db=args.db, sizes=not args.no_sizes)
    sys.stdout.write(render(result, args.format))
    return EXIT_OK


def cmd_audit(project: Project, args: argparse.Namespace) -> int:
    from envtiers.review.audit import audit

    if args.db is not None and args.service is not None:
        raise InputError("--db and --service are alternatives", fix="pass one of them")
    report = audit(project, tiers=args.tier, db=args.db, service=args.service)
    if args.format == "json":
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.render())
    return report.exit_code


def cmd_sbom(project: Project, args: argparse.Namespace) -> int:
    from envtiers.fsutil import atomic_write_text
    from envtiers.review.sbom import sbom

    text = sbom(project, tier=args.tier, platform=args.platform)
    if args.output is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(args.output, text)
        print(args.output, file=sys.stderr)
    return EXIT_OK


def cmd_export_pylock(project: Project, args: argparse.Namespace) -> int:
    """`envtiers export --format pylock`: writes the file and prints its path."""
    from envtiers.review.pylock import export_pylock

    print(export_pylock(project, platform=args.platform, output=args.output))
    return EXIT_OK


def print_coverage(project: Project) -> None:
    """`envtiers check --verbose`: the per-platform coverage after the check's own report."""
    from envtiers.review.coverage import coverage, render

    rows, note = coverage(project)
    print(render(rows, note))


def register(commands: Any) -> None:
    """Add diff, audit and sbom to envtiers' subcommands (`commands` is argparse's subparsers action)."""
    from envtiers.review.names import FORMATS, REVIEW_TIERS, SBOM_TIERS

    diff = commands.add_parser("diff", help="what a lock change does: packages, sizes, CUDA libraries, advisories")
    diff.add_argument(
        "--base", help="git revision to compare with (default: merge base with the default branch, or HEAD)"
    )
    diff.add_argument("--format", choices=FORMATS, default="text")
    diff.add_argument("--tier", action="append", choices=REVIEW_TIERS, help="only this tier (repeatable)")
    diff.add_argument("--db", type=Path, help="OSV folder to compare advisories (default: [audit] db)")
    diff.add_argument("--no-sizes", action="store_true", help="do not ask the index for download sizes")
    diff.set_defaults(handler=cmd_diff)

    audit = commands.add_parser(
        "audit",
        help="known vulnerabilities in every locked package (exit 0 clean, 1 vulnerable or expired ignore, 2 error)",
    )
    audit.add_argument("--tier", action="append", choices=REVIEW_TIERS, help="only this tier (repeatable)")
    audit.add_argument("--db", type=Path, help="OSV folder, offline (default: ENVTIERS_AUDIT_DB, then [audit] db)")
    audit.add_argument("--service", choices=("osv",), help="ask OSV's API instead (ENVTIERS_OSV_URL overrides its URL)")
    audit.add_argument("--format", choices=("text", "json"), default="text")
    audit.set_defaults(handler=cmd_audit)

    sbom = commands.add_parser("sbom", help="CycloneDX 1.6 JSON SBOM of a tier, from the lock alone")
    sbom.add_argument("--tier", choices=SBOM_TIERS, required=True)
    sbom.add_argument("--platform", help="whose lock (default linux-64)")
    sbom.add_argument("--output", type=Path, help="write here instead of stdout")
    sbom.set_defaults(handler=cmd_sbom)
