"""The ``local`` target: ``python -m detector serve`` as a process on this machine.

:func:`deploy_local` starts the server on an export folder, waits for its "serving ... on URL"
line and for ``/ping``, posts a generated PNG to ``/invocations`` and returns a
:class:`Deployment` whose ``stop()`` sends SIGTERM and waits for the server to drain and exit.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from detector import config
from detector.errors import DeployError, DeployTimeoutError
from detector.export import read_metadata

log = logging.getLogger(__name__)

_READY_LINE = re.compile(r"detector: serving .* on (http://\S+)")


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test's /invocations call returned."""

    detections: int
    seconds: float


@dataclass
class Deployment:
    """A server process started by :func:`deploy_local`; ``stop()`` it (or use ``with``)."""

    url: str
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    smoke: SmokeResult | None = None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait ``timeout`` seconds for the drain (SIGKILL after). Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the server did not exit %.0f s after SIGTERM; killing it", timeout)
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sample_png(width: int = 160, height: int = 120) -> bytes:
    """A small PNG (a green blob on brown) for smoke tests."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (120, 90, 60))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(40, 160, 50))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _server_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The server imports this package: make that work from any working directory.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(config.PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return env


def wait_for_ping(url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url``/ping until it answers 200. Raises DeployTimeoutError, or DeployError if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if process is not None and process.poll() is not None:
            raise DeployError(f"the server exited with status {process.returncode} before /ping answered")
        if time.monotonic() > deadline:
            raise DeployTimeoutError(f"{url}/ping did not answer 200 within {timeout:.0f} s")
        time.sleep(0.2)


def smoke_test(url: str, *, timeout: float = 60.0) -> SmokeResult:
    """POST a generated PNG to ``url``/invocations and check the answer's shape. Raises DeployError."""
    request = urllib.request.Request(
        f"{url}/invocations", data=sample_png(), headers={"Content-Type": "image/png"}, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise DeployError(
            f"smoke test: /invocations answered {error.code}: {error.read()[:200]!r}",
            fix="read the server log; the export may be broken: export it again",
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DeployError(f"smoke test: /invocations failed ({error})") from None
    seconds = time.perf_counter() - started
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not (isinstance(predictions, list) and len(predictions) == 1 and isinstance(predictions[0], list)):
        raise DeployError(f"smoke test: expected one list of detections, got {str(payload)[:200]}")
    for detection in predictions[0]:
        if set(detection) != {"class_name", "class_id", "box", "score"} or len(detection["box"]) != 4:
            raise DeployError(f"smoke test: malformed detection {detection}")
    return SmokeResult(detections=len(predictions[0]), seconds=seconds)


def deploy_local(
    *,
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout: float = 120.0,
    log_path: Path | None = None,
    smoke: bool = True,
) -> Deployment:
    """Start ``python -m detector serve`` on ``model_dir``, wait for /ping, smoke-test it.

    ``port`` 0 lets the server pick a free port (the URL says which). Its output goes to
    ``log_path`` (a temporary file by default). Returns the running Deployment. Raises
    ExportFormatError before starting anything when ``model_dir`` is not an export, DeployError
    (with the log's last lines) when the server exits, does not start in ``start_timeout``
    seconds, or fails the smoke test; the process is stopped then.
    """
    model_dir = Path(model_dir)
    read_metadata(model_dir)
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="detector-serve-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    command = [sys.executable, "-m", "detector", "-v", "serve", "--model-dir", str(model_dir), "--host", host]
    command += ["--port", str(port)]
    with open(log_path, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=_server_env())
    log.info("started the server (pid %d), log in %s", process.pid, log_path)
    deployment = Deployment(url="", process=process, log_path=log_path)
    try:
        deployment.url = _wait_for_ready_line(process, log_path, timeout=start_timeout)
        wait_for_ping(deployment.url, timeout=start_timeout, process=process)
        if smoke:
            deployment.smoke = smoke_test(deployment.url)
    except DeployError as error:
        deployment.stop()
        tail = _log_tail(log_path)
        raise DeployError(f"{error.headline}{f' (server log: {tail})' if tail else ''}", fix=error.fix) from None
    return deployment


def _wait_for_ready_line(process: subprocess.Popen[bytes], log_path: Path, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        match = _READY_LINE.search(log_path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise DeployError(f"the server exited with status {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise DeployTimeoutError(f"the server did not start listening within {timeout:.0f} s")
        time.sleep(0.2)
