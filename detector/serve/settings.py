"""The server's settings: command-line option, then environment variable, then default.

- ``SAGEMAKER_BIND_TO_PORT`` (8080): the port (``--port`` wins).
- ``SAGEMAKER_MODEL_SERVER_WORKERS`` (1): worker processes, each with its own copy of the model.
- ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` (60): seconds a request may take to send its body (else
  408), and then to be predicted (else 504).
- ``SAGEMAKER_CONTAINER_LOG_LEVEL`` (20, INFO): a number (10, 20, 30, 40) or a name (DEBUG,
  INFO, WARNING, ERROR).
- ``DETECTOR_SERVER_MAX_QUEUE`` (16): requests each worker admits at once (running or waiting
  for the model); more get 503 + Retry-After.
- ``DETECTOR_SERVER_BACKLOG`` (2048): the listen backlog, connections the kernel queues until a
  worker accepts them.

The first four are the names SageMaker's own serving containers read. One worker is the default
because TensorFlow already spreads one prediction over every core: on this 2-core machine a
second worker adds memory (a model each) but not throughput (see the README's serving section).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from detector import config
from detector.errors import ServeError

_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def resolve_port(port: int | None, environ: Mapping[str, str] | None = None) -> int:
    """The port to listen on: ``port``, else $SAGEMAKER_BIND_TO_PORT, else 8080. Raises ServeError."""
    environ = os.environ if environ is None else environ
    if port is None:
        if not environ.get(config.SERVE_PORT_ENV, "").strip():
            return config.SERVE_PORT
        port = _integer(environ, config.SERVE_PORT_ENV, 0, fix="a number in 1-65535, or pass --port")
    if not 0 <= port <= 65535:
        raise ServeError(f"port {port} is outside 0-65535", fix="pass --port 8080 (0 picks a free port)")
    return port


def _integer(environ: Mapping[str, str], name: str, default: int, *, fix: str, minimum: int = 1) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ServeError(f"{name}={raw!r} is not a whole number", fix=f"set {name} to {fix}") from None
    if value < minimum:
        raise ServeError(f"{name}={value} is below {minimum}", fix=f"set {name} to {fix}")
    return value


def resolve_log_level(environ: Mapping[str, str] | None = None) -> int:
    """$SAGEMAKER_CONTAINER_LOG_LEVEL as a logging level (a number or a name; INFO when unset)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(config.SERVE_LOG_LEVEL_ENV, "").strip()
    if not raw:
        return logging.INFO
    if raw.isdigit():
        return int(raw)
    if raw.upper() in _LEVEL_NAMES:
        return int(logging.getLevelName(raw.upper()))
    raise ServeError(
        f"{config.SERVE_LOG_LEVEL_ENV}={raw!r} is not a log level",
        fix=f"set {config.SERVE_LOG_LEVEL_ENV} to 10, 20, 30 or 40 (or DEBUG, INFO, WARNING, ERROR)",
    )


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs; :meth:`from_env` reads them. Picklable: workers get a copy."""

    workers: int = 1
    timeout: int = config.SERVE_TIMEOUT
    log_level: int = logging.INFO
    max_queue: int = config.SERVE_MAX_QUEUE
    backlog: int = config.SERVE_BACKLOG
    keep_alive: int = config.SERVE_KEEP_ALIVE
    drain_seconds: float = config.DRAIN_SECONDS
    max_body_bytes: int = config.MAX_REQUEST_BYTES
    # Bodies read at once, by their Content-Length: beyond this, new uploads get 503.
    max_buffered_bytes: int = 32 * config.MAX_REQUEST_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Raises ServeError naming the variable whose value cannot be used."""
        environ = os.environ if environ is None else environ
        return cls(
            workers=_integer(environ, config.SERVE_WORKERS_ENV, 1, fix="a number of processes, e.g. 1 or 2"),
            timeout=_integer(environ, config.SERVE_TIMEOUT_ENV, config.SERVE_TIMEOUT, fix="seconds, e.g. 60"),
            log_level=resolve_log_level(environ),
            max_queue=_integer(environ, config.SERVE_QUEUE_ENV, config.SERVE_MAX_QUEUE, fix="a count, e.g. 16"),
            backlog=_integer(environ, config.SERVE_BACKLOG_ENV, config.SERVE_BACKLOG, fix="a count, e.g. 2048"),
        )

    def describe(self) -> str:
        return (
            f"workers={self.workers} timeout_s={self.timeout} max_queue={self.max_queue} backlog={self.backlog} "
            f"keep_alive_s={self.keep_alive} max_body_bytes={self.max_body_bytes} "
            f"log_level={logging.getLevelName(self.log_level)}"
        )
