"""`envtiers image build|push|inspect`: the image tier's linux-64 image, built, pushed and pinned."""

from __future__ import annotations

import argparse
import json

from envtiers.commands import say
from envtiers.errors import EXIT_OK
from envtiers.settings import Project


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("image", help="the image tier: build, push and pin the linux-64 image")
    commands = parser.add_subparsers(dest="image_command", required=True)
    for name, handler, summary in (
        ("build", build, "build and push the image unless the registry has its tag; write the record"),
        ("push", push, "push the locally built image and write lockfiles/image.json"),
        ("inspect", inspect, "print the image's tag, the registry's digest and the record's state"),
    ):
        sub = commands.add_parser(name, help=summary)
        sub.add_argument("--registry", help="registry/namespace (env: REGISTRY; default: [image] registry)")
        sub.add_argument("--base-image", help="base pinned by digest (env: BASE_IMAGE; default: the Dockerfile's)")
        if name == "build":
            sub.add_argument("--no-push", action="store_true", help="build locally only (no registry, no record)")
            sub.add_argument("--no-cache", action="store_true", help="rebuild every layer (when a build is needed)")
        sub.set_defaults(handler=handler)


def build(project: Project, args: argparse.Namespace) -> int:
    from envtiers.image.builder import build

    result = build(
        project,
        registry=args.registry,
        base_image=args.base_image,
        push_image=not args.no_push,
        no_cache=args.no_cache,
        report=say,
    )
    print(result.record.reference if result.record else result.spec.reference)
    return EXIT_OK


def push(project: Project, args: argparse.Namespace) -> int:
    from envtiers.image.builder import push_built

    print(push_built(project, registry=args.registry, base_image=args.base_image, report=say).reference)
    return EXIT_OK


def inspect(project: Project, args: argparse.Namespace) -> int:
    from envtiers.image.builder import inspect

    print(json.dumps(inspect(project, registry=args.registry, base_image=args.base_image), indent=2))
    return EXIT_OK
