"""The `envtiers` command line: parses options, calls the library, decides exit codes.

The commands themselves live in `envtiers.commands` (one module each, listed in `COMMANDS`); this
module knows no command and no tier, only how to turn errors into one `envtiers: error:` line, a
`fix:` line and an exit code.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from envtiers import __version__
from envtiers.commands import register_all, say
from envtiers.errors import EXIT_BAD_INPUT, EXIT_FAILED, EnvtiersError, InputError
from envtiers.settings import load_project

# OS errors a user can fix on their side: reported with the fix, never as a traceback.
_OS_FIXES = {
    errno.ENOSPC: "free some space on that disk (or set ENVTIERS_CACHE_DIR elsewhere for environments), then retry",
    errno.EDQUOT: "free some space within your quota, then retry",
    errno.EACCES: "make the folder writable for you (or run from a copy you own), then retry",
    errno.EPERM: "make the folder writable for you (or run from a copy you own), then retry",
    errno.EROFS: "run from a writable copy of the project, or set ENVTIERS_CACHE_DIR to a writable folder",
}


class _Parser(argparse.ArgumentParser):
    """argparse's errors in envtiers' shape: one error line, one fix line, exit 2."""

    def error(self, message: str) -> NoReturn:
        say(f"envtiers: error: {message}\n  fix: see `{self.prog} --help`")
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="envtiers", description="Reproducible environments in tiers.")
    parser.add_argument("--version", action="version", version=f"envtiers {__version__}")
    parser.add_argument("--project", type=Path, help="project root (default: found from the cwd)")
    parser.add_argument("--index-url", help="package index for uv (env: ENVTIERS_INDEX_URL)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the external commands run")
    parser.set_defaults(needs_project=True)
    register_all(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error already printed with its fix
        return exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s", stream=sys.stderr
    )
    try:
        if not args.needs_project:  # `init` makes the project: there is none to load yet
            return int(args.handler(None, args))
        project = load_project(args.project, index_url=args.index_url)
        return int(args.handler(project, args))
    except EnvtiersError as error:
        say(error.render())
        return error.exit_code
    except BrokenPipeError:
        return EXIT_BAD_INPUT
    except OSError as error:
        if error.errno not in _OS_FIXES:
            raise
        where = f" ({error.filename})" if error.filename else ""
        say(InputError(f"{os.strerror(error.errno)}{where}", fix=_OS_FIXES[error.errno]).render())
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("envtiers: interrupted")
        return 130
