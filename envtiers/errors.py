"""The toolkit's exceptions: one root, each subclass renders its own message.

Only the CLI turns an exception into an exit code (`EnvtiersError.exit_code`); library code
raises and never calls `sys.exit`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (inconsistent lock, failed build)
EXIT_BAD_INPUT = 2  # the command could not run on what it was given


class EnvtiersError(Exception):
    """Root of every error a user can see.

    `headline` is the one line printed to the user; `fix` is the command or change that
    repairs it, printed on the next line.
    """

    exit_code = EXIT_FAILED

    def __init__(self, headline: str, *, fix: str | None = None) -> None:
        super().__init__(headline)
        self.headline = headline
        self.fix = fix

    def render(self) -> str:
        text = f"envtiers: error: {self.headline}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class InputError(EnvtiersError):
    """The user's input (spec, settings, options) cannot be used as it is."""

    exit_code = EXIT_BAD_INPUT


class SettingsError(InputError):
    pass


class SpecError(InputError):
    pass


class LockfileFormatError(EnvtiersError):
    """A lockfile cannot be read: missing, truncated, hand-edited or damaged."""


class UnknownFormatError(LockfileFormatError):
    """A file of a format version this envtiers does not know: nothing in it can be trusted."""

    exit_code = EXIT_BAD_INPUT


class TamperedLockError(LockfileFormatError, InputError):
    """A lockfile whose content no longer matches its recorded digest: nothing is built from it."""

    exit_code = EXIT_BAD_INPUT


class ResolutionError(InputError):
    """The resolver could not produce a lock from the spec (unknown package, conflict, no wheel)."""


class NoWheelError(ResolutionError):
    def __init__(self, package: str, platform: str) -> None:
        super().__init__(
            f"{package} has no wheel for {platform}, and cross-platform locks are wheel-only",
            fix=(
                f"constrain {package} in envs/requirements.in to a version that ships a {platform} "
                f"wheel, exclude it in envs/overrides.txt if nothing imports it at run time, or use "
                f"the conda or image tier for this dependency"
            ),
        )
        self.package = package
        self.platform = platform


class IndexUnreachableError(EnvtiersError):
    pass


class DownloadMismatchError(EnvtiersError):
    """A file the index served does not have the sha256 the lock records."""


class ToolError(EnvtiersError):
    """An external tool (uv, docker, ...) failed in a way we could not classify."""


class EnvironmentBuildError(EnvtiersError):
    pass


class LockBusyError(EnvtiersError):
    pass
