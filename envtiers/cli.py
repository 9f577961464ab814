"""The `envtiers` command line: parses options, calls the library, decides exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from envtiers import __version__
from envtiers.errors import EXIT_BAD_INPUT, EXIT_OK, EnvtiersError, InputError
from envtiers.settings import Project, load_project

TIERS = ("pip", "conda")
CHECK_TIERS = ("pip", "conda", "image")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_lock(project: Project, args: argparse.Namespace) -> int:
    from envtiers.check import configured_tiers

    # Without --tier every configured tier is locked, pip first: the conda lock's pip entries come
    # from it. --platform narrows the pip locks; the conda lock is one file, relocked when stale.
    tiers = [args.tier] if args.tier else list(configured_tiers(project))
    changed = total = 0
    if "pip" in tiers:
        from envtiers.pip.locker import lock

        results = lock(project, platforms=args.platform or None, force=args.force, upgrade=args.upgrade, report=_say)
        changed += sum(result.changed for result in results)
        total += len(results)
    if "conda" in tiers:
        from envtiers.conda.locker import lock as lock_conda

        if args.platform and args.tier == "conda":
            raise InputError(
                "the conda lock is one file for every platform: --platform does not apply",
                fix="run `envtiers lock --tier conda` without --platform",
            )
        result = lock_conda(project, force=args.force or args.upgrade, report=_say)
        changed += result.changed
        total += 1
    _say(f"{changed} lockfile(s) written, {total - changed} up to date")
    return EXIT_OK


def cmd_check(project: Project, args: argparse.Namespace) -> int:
    from envtiers.check import check_project

    report = check_project(project, tiers=tuple(args.tier) if args.tier else None)
    for problem in report.problems:
        print(problem.render())
    if report.problems:
        print(f"{len(report.problems)} problem(s) in {len(report.checked)} lockfile(s)")
    else:
        print(f"{len(report.checked)} lockfile(s) consistent")
    if args.coverage:
        from envtiers.review.cli import print_coverage

        print_coverage(project)
    return report.exit_code


def cmd_env_create(project: Project, args: argparse.Namespace) -> int:
    if args.tier == "conda":
        from envtiers.conda.environment import create as create_conda

        _no_dev(args)
        conda_info = create_conda(project, platform=args.platform, target=args.target)
        _say(f"{'created' if conda_info.created else 'reused'} {conda_info.prefix}")
        print(conda_info.python)
        return EXIT_OK
    from envtiers.pip.environment import create

    info = create(
        project,
        platform=args.platform,
        dev=args.dev,
        target=args.target,
        link_project=args.link_project,
    )
    _say(f"{'created' if info.created else 'reused'} {info.prefix}")
    print(info.python)
    return EXIT_OK


def cmd_env_path(project: Project, args: argparse.Namespace) -> int:
    from envtiers.envcache import python_in

    if args.tier == "conda":
        from envtiers.conda.environment import env_path as conda_env_path

        _no_dev(args)
        print(python_in(conda_env_path(project, platform=args.platform, target=args.target)))
        return EXIT_OK
    from envtiers.pip.environment import env_path

    print(python_in(env_path(project, platform=args.platform, dev=args.dev, target=args.target)))
    return EXIT_OK


def _no_dev(args: argparse.Namespace) -> None:
    if args.dev or getattr(args, "link_project", False):
        raise InputError("--dev and --link-project apply to the pip tier only", fix="drop them, or use --tier pip")


def cmd_export(project: Project, args: argparse.Namespace) -> int:
    from envtiers.export import export

    if args.format == "pylock":
        from envtiers.review.cli import cmd_export_pylock

        return cmd_export_pylock(project, args)
    sys.stdout.write(export(project, tier=args.tier, fmt=args.format, platform=args.platform))
    return EXIT_OK


def cmd_image_build(project: Project, args: argparse.Namespace) -> int:
    from envtiers.image.builder import build

    result = build(
        project,
        registry=args.registry,
        base_image=args.base_image,
        push_image=not args.no_push,
        no_cache=args.no_cache,
        report=_say,
    )
    print(result.record.reference if result.record else result.spec.reference)
    return EXIT_OK


def cmd_image_push(project: Project, args: argparse.Namespace) -> int:
    from envtiers.image.builder import push_built

    record = push_built(project, registry=args.registry, base_image=args.base_image, report=_say)
    print(record.reference)
    return EXIT_OK


def cmd_image_inspect(project: Project, args: argparse.Namespace) -> int:
    import json

    from envtiers.image.builder import inspect

    print(json.dumps(inspect(project, registry=args.registry, base_image=args.base_image), indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envtiers", description="Reproducible environments in tiers.")
    parser.add_argument("--version", action="version", version=f"envtiers {__version__}")
    parser.add_argument("--project", type=Path, help="project root (default: found from the cwd)")
    parser.add_argument("--index-url", help="package index for uv (env: ENVTIERS_INDEX_URL)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the external commands run")
    commands = parser.add_subparsers(dest="command", required=True)

    lock = commands.add_parser("lock", help="resolve lockfiles whose inputs changed")
    lock.add_argument("--tier", choices=TIERS, help="only this tier (default: every tier, pip first)")
    lock.add_argument("--platform", action="append", help="only this platform (repeatable)")
    lock.add_argument("--force", action="store_true", help="re-resolve even when inputs are unchanged")
    lock.add_argument("--upgrade", action="store_true", help="re-resolve to the newest allowed versions")
    lock.set_defaults(handler=cmd_lock)

    check = commands.add_parser("check", help="verify lockfiles against their inputs (offline)")
    check.add_argument("--tier", action="append", choices=CHECK_TIERS, help="only this tier (repeatable)")
    check.add_argument(
        "--verbose", dest="coverage", action="store_true", help="also print each platform's coverage and download size"
    )
    check.set_defaults(handler=cmd_check)

    export = commands.add_parser("export", help="print a tier's pins for another tool (stock Metaflow @pypi)")
    export.add_argument("--tier", choices=("pip", "conda"), default="pip")
    export.add_argument("--format", choices=("metaflow", "pylock"), default="metaflow")
    export.add_argument("--platform", default="linux-64", help="whose lock (default linux-64: @batch, @kubernetes)")
    export.add_argument("--output", type=Path, help="pylock: the file or folder (default: pylock.<platform>.toml)")
    export.set_defaults(handler=cmd_export)

    image = commands.add_parser("image", help="the image tier: build, push and pin the linux-64 image")
    image_commands = image.add_subparsers(dest="image_command", required=True)
    for name, handler, summary in (
        ("build", cmd_image_build, "build and push the image unless the registry has its tag; write the record"),
        ("push", cmd_image_push, "push the locally built image and write lockfiles/image.json"),
        ("inspect", cmd_image_inspect, "print the image's tag, the registry's digest and the record's state"),
    ):
        sub = image_commands.add_parser(name, help=summary)
        sub.add_argument("--registry", help="registry/namespace (env: REGISTRY; default: [image] registry)")
        sub.add_argument("--base-image", help="base pinned by digest (env: BASE_IMAGE; default: the Dockerfile's)")
        if name == "build":
            sub.add_argument("--no-push", action="store_true", help="build locally only (no registry, no record)")
            sub.add_argument("--no-cache", action="store_true", help="rebuild every layer (when a build is needed)")
        sub.set_defaults(handler=handler)

    env = commands.add_parser("env", help="environments built from the lockfiles")
    env_commands = env.add_subparsers(dest="env_command", required=True)
    for name, handler, summary in (
        ("create", cmd_env_create, "build (or reuse) the environment and print its interpreter"),
        ("path", cmd_env_path, "print the interpreter of the environment for the current lock"),
    ):
        sub = env_commands.add_parser(name, help=summary)
        sub.add_argument("--tier", choices=TIERS, default="pip")
        sub.add_argument("--platform", help="must be the host's platform (default)")
        sub.add_argument("--dev", action="store_true", help="include the dev lock (the project's .venv)")
        sub.add_argument("--target", type=Path, help="build here instead of the envtiers cache")
        if name == "create":
            sub.add_argument("--link-project", action="store_true", help="put the project on sys.path")
        sub.set_defaults(handler=handler)

    from envtiers.review.cli import register as register_review

    register_review(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run the command, then exit without racing py-rattler's threads."""
    code = run(argv)
    if "rattler" in sys.modules:
        # py-rattler keeps a Rust runtime whose threads may still touch the GIL while Python
        # finalises, which aborts the process (SIGABRT, "PyGILState_Release ... finalizing") after
        # the work is done. The command's outcome is decided: flush and leave without finalising.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s", stream=sys.stderr
    )
    try:
        project = load_project(args.project, index_url=args.index_url)
        return int(args.handler(project, args))
    except EnvtiersError as error:
        _say(error.render())
        return error.exit_code
    except KeyboardInterrupt:
        _say("envtiers: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_BAD_INPUT
