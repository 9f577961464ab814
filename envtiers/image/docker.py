"""The one place envtiers runs the docker CLI: logs each command, streams long ones, and turns
failures into envtiers errors with the fix.

Registry credentials from the environment (ENVTIERS_REGISTRY_USER / ENVTIERS_REGISTRY_PASSWORD)
go to `docker login --password-stdin` in a private, temporary DOCKER_CONFIG that is deleted when
the session ends: they never reach a command line, a log line, the user's ~/.docker or the image.
Without them, docker's own config and credential store are used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envtiers.errors import EnvtiersError, InputError, ToolError

log = logging.getLogger(__name__)

USER_VARIABLE = "ENVTIERS_REGISTRY_USER"
PASSWORD_VARIABLE = "ENVTIERS_REGISTRY_PASSWORD"
_NOT_RUNNING = ("cannot connect to the docker daemon", "is the docker daemon running", "error during connect")
_AUTH = ("unauthorized", "authentication required", "denied: ", "no basic auth credentials", "401 unauthorized")
_UNREACHABLE = ("no such host", "connection refused", "i/o timeout", "error pinging v2 registry", "dial tcp")
_NOT_FOUND = ("manifest unknown", "no such manifest", "not found: manifest", "manifest for", "name unknown")


class DockerUnavailableError(ToolError):
    pass


class RegistryAuthError(EnvtiersError):
    pass


class RegistryUnreachableError(EnvtiersError):
    pass


class DockerCommandError(ToolError):
    """A docker command failed; `output` holds the tail of what it printed."""

    def __init__(self, headline: str, *, fix: str | None = None, output: str = "") -> None:
        super().__init__(headline, fix=fix)
        self.output = output


@dataclass
class Docker:
    """Runs `docker ...` with one environment: DOCKER_CONFIG when logged in from the environment,
    DOCKER_BUILDKIT as detected."""

    executable: str = "docker"
    env: dict[str, str] = field(default_factory=dict)
    report: Callable[[str], None] = lambda line: None

    def command_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def run(
        self,
        args: Sequence[str],
        *,
        what: str,
        stream: bool = False,
        stdin: str | None = None,
        fix: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS`. With `stream`, each output line goes to `report` as it comes.
        Raises DockerUnavailableError, RegistryAuthError or DockerCommandError (when `check`)."""
        argv = [self.executable, *args]
        log.info("$ %s", shlex.join(argv))
        try:
            if stream:
                done = self._stream(argv, stdin=stdin)
            else:
                done = subprocess.run(
                    argv, input=stdin, capture_output=True, text=True, env=self.command_env(), check=False
                )
        except FileNotFoundError:
            raise DockerUnavailableError(
                f"{self.executable} was not found on PATH", fix="install Docker (apt-get install docker.io)"
            ) from None
        if check and done.returncode != 0:
            raise self.classify(done, what=what, fix=fix)
        return done

    def _stream(self, argv: list[str], *, stdin: str | None) -> subprocess.CompletedProcess[str]:
        tail: deque[str] = deque(maxlen=60)
        with subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.command_env(),
        ) as process:
            if stdin is not None and process.stdin is not None:
                process.stdin.write(stdin)
                process.stdin.close()
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                self.report(line)
            returncode = process.wait()
        output = "\n".join(tail)
        return subprocess.CompletedProcess(argv, returncode, output, "")

    def classify(self, done: subprocess.CompletedProcess[str], *, what: str, fix: str | None) -> EnvtiersError:
        output = ((done.stdout or "") + "\n" + (done.stderr or "")).strip()
        lower = output.lower()
        if any(text in lower for text in _NOT_RUNNING):
            return DockerUnavailableError(
                "the docker daemon is not running (or this user may not use it)",
                fix="start it (`dockerd &`, Docker Desktop, or `sudo systemctl start docker`) and retry",
            )
        if any(text in lower for text in _AUTH):
            return RegistryAuthError(
                f"{what}: the registry refused the credentials ({_last_line(output)})",
                fix=f"set {USER_VARIABLE} and {PASSWORD_VARIABLE}, or run `docker login <registry>`",
            )
        if any(text in lower for text in _UNREACHABLE):
            return RegistryUnreachableError(
                f"{what}: the registry cannot be reached ({_last_line(output)})",
                fix="check the network and the registry name ([image] registry in envs/tiers.toml, or REGISTRY=...)",
            )
        return DockerCommandError(
            f"{what} failed (exit {done.returncode}): {_last_line(output)}",
            fix=fix or "see the docker output above; rerun with -v to log the commands",
            output=output,
        )

    def buildkit_available(self) -> bool:
        """True when `docker buildx` works (then BuildKit builds); the classic builder otherwise."""
        done = self.run(["buildx", "version"], what="docker buildx version", check=False)
        return done.returncode == 0

    def image_exists(self, reference: str) -> bool:
        return self.run(["image", "inspect", reference], what="docker image inspect", check=False).returncode == 0

    def inspect(self, reference: str) -> dict[str, object]:
        done = self.run(["image", "inspect", reference], what=f"docker image inspect {reference}")
        data = json.loads(done.stdout)
        return dict(data[0])


def is_not_found(error: DockerCommandError) -> bool:
    return any(text in error.output.lower() for text in _NOT_FOUND)


def is_local_registry(host: str) -> bool:
    """Registries docker talks plain HTTP to (its default insecure range)."""
    name = host.rsplit(":", 1)[0]
    return name in ("localhost", "::1") or name.startswith("127.")


@contextlib.contextmanager
def session(
    *, registry_host: str, report: Callable[[str], None], environ: Mapping[str, str] | None = None
) -> Iterator[Docker]:
    """A Docker runner logged in to `registry_host` from the environment when credentials are set
    there (in a temporary DOCKER_CONFIG, removed on exit), else using docker's own credentials."""
    environ = os.environ if environ is None else environ
    user, password = environ.get(USER_VARIABLE), environ.get(PASSWORD_VARIABLE)
    if bool(user) != bool(password):
        raise InputError(
            f"set both {USER_VARIABLE} and {PASSWORD_VARIABLE}, or neither",
            fix="export the missing one, or unset both to use `docker login`",
        )
    docker = Docker(report=report)
    if not (user and password):
        yield docker
        return
    config = Path(tempfile.mkdtemp(prefix="envtiers-docker-"))
    try:
        config.chmod(0o700)
        home_config = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        if home_config.is_file():  # keep the user's other settings (proxies, helpers for other registries)
            shutil.copy2(home_config, config / "config.json")
        docker.env["DOCKER_CONFIG"] = str(config)
        docker.run(
            ["login", "--username", user, "--password-stdin", registry_host],
            what=f"docker login {registry_host}",
            stdin=password,
        )
        yield docker
    finally:
        shutil.rmtree(config, ignore_errors=True)


def manifest_digest(docker: Docker, reference: str) -> str | None:
    """The registry's linux/amd64 digest for `reference` (name:tag or name@digest), or None when it
    has none."""
    from envtiers.image.spec import registry_host

    args = ["manifest", "inspect", "-v"]
    if is_local_registry(registry_host(reference)):
        args.append("--insecure")
    try:
        done = docker.run([*args, reference], what=f"docker manifest inspect {reference}")
    except DockerCommandError as error:
        if is_not_found(error):
            return None
        raise
    data = json.loads(done.stdout)
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        descriptor = entry.get("Descriptor", {})
        platform = descriptor.get("platform") or {}
        if platform.get("os", "linux") == "linux" and platform.get("architecture", "amd64") == "amd64":
            return str(descriptor["digest"])
    return None


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
