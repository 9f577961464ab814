"""``python -m detector``: parses options, calls the library, decides exit codes.

Each subcommand is a thin ``cmd_*`` function over a library function that the flow's steps and
the tests call directly. A user's mistake prints ``detector: error: ...`` and a ``fix:`` line,
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from detector import config
from detector.errors import EXIT_OK, DetectorError


def cmd_sample(args: argparse.Namespace) -> int:
    from detector.sample import generate_sample

    summary = generate_sample(args.out, images=args.images, seed=args.seed, size=args.size)
    print(summary.line())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detector", description="The PlantDoc RetinaNet detector.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser(
        "sample",
        help="write the synthetic PlantDoc-layout dataset",
        description="Write a small synthetic dataset in PlantDoc's layout (TRAIN/, TEST/, *_labels.csv).",
    )
    sample.add_argument("--out", type=Path, default=config.SAMPLE_DIR, help="folder to write (default: %(default)s)")
    sample.add_argument("--images", type=int, default=config.SAMPLE_IMAGES, help="images in both splits")
    sample.add_argument("--seed", type=int, default=config.SAMPLE_SEED, help="same seed, same bytes")
    sample.add_argument("--size", type=int, default=config.SAMPLE_SIZE, help="longer image side in pixels")
    sample.set_defaults(handler=cmd_sample)
    # train, evaluate, export and serve join here as their library functions land.
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except DetectorError as error:
        print(error.render(), file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
