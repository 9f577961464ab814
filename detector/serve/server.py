"""Run :class:`~detector.serve.app.DetectorApp` on uvicorn: bind, workers, logs, SIGTERM drain.

:func:`run_server` checks the model folder and binds the port first (a mistake fails in a
second, before TensorFlow loads), then serves with one process (the model loaded in it) or
``workers`` spawned processes sharing the socket (each loads its own model; uvicorn's
supervisor restarts one that dies). SIGTERM or SIGINT: the listener closes, idle keep-alive
connections close, requests in flight finish (up to ``drain_seconds``), each worker logs
``event=shutdown`` and the command returns, exit status 0.

Why uvicorn (measured, see the README's serving section): connections are handled on an event
loop, so 200 keep-alive clients or 300 stalled ones cost a socket each, not a thread or a
process each; the model runs on one thread per worker behind a bounded queue, which is what
turns overload into 503 + Retry-After instead of growing latency.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from detector.errors import ServeError
from detector.export import read_metadata
from detector.serve.app import DetectorApp, fields
from detector.serve.settings import ServeSettings, resolve_port

log = logging.getLogger("detector.serve")

# Request heads (request line and headers) larger than this are refused by the HTTP parser.
MAX_HEAD_BYTES = 64 * 1024
_NOFILE_TARGET = 65536


def log_config(level: int) -> dict[str, Any]:
    """``logging.config.dictConfig`` settings for the server and its workers (picklable)."""
    quiet = max(level, logging.WARNING)  # uvicorn's own start-up chatter only when asked for DEBUG
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level if level <= logging.DEBUG else quiet},
            "uvicorn.access": {"level": logging.WARNING},
        },
    }


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket. Raises ServeError when it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port} ({error.strerror or error})",
            fix="pass another --port (or stop what uses it), and a --host this machine has",
        ) from None
    sock.set_inheritable(True)
    return sock


def _raise_file_limit() -> int:
    # Every connection, stalled or not, holds a file descriptor: 1024 would cap clients early.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _NOFILE_TARGET if hard == resource.RLIM_INFINITY else min(hard, _NOFILE_TARGET)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


def _announce_when_ready(
    url: str, line: str, announce: Callable[[str], None], stopped: threading.Event
) -> threading.Thread:
    """Print ``line`` once ``url``/ping answers 200: a worker has loaded its model and accepts."""

    def poll() -> None:
        while not stopped.is_set():
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        announce(line)
                        return
            except (urllib.error.URLError, OSError):
                pass
            stopped.wait(0.1)

    thread = threading.Thread(target=poll, name="announce", daemon=True)
    thread.start()
    return thread


def _print_flushed(line: str) -> None:
    print(line, flush=True)  # stdout is often a file or pipe: buffered, the line would come late


def run_server(
    *,
    model_dir: Path,
    host: str = "0.0.0.0",
    port: int | None = None,
    settings: ServeSettings | None = None,
    announce: Callable[[str], None] | None = None,
) -> bool:
    """Serve ``model_dir`` until SIGTERM or SIGINT, then drain and return.

    ``settings`` default to :meth:`ServeSettings.from_env`. ``announce`` gets one line with the
    URL once ``/ping`` answers (tests and ``deploy`` wait for it). Must run on the main thread
    (signal handlers). Returns True after a signal, as a drained server does. Raises
    ServeError (settings, port, workers that cannot start), UnreadableModelError or
    ExportFormatError (the model folder) before serving.
    """
    import logging.config

    import uvicorn

    settings = settings or ServeSettings.from_env()
    port = resolve_port(port)  # before the slow part: a bad setting fails at once
    model_dir = Path(model_dir)
    read_metadata(model_dir)  # readable, and an export: otherwise no worker could load it
    sock = bind(host, port, settings.backlog)
    logging.config.dictConfig(log_config(settings.log_level))
    bound_port = sock.getsockname()[1]
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    url = f"http://{probe if ':' not in probe else f'[{probe}]'}:{bound_port}"
    files = _raise_file_limit()
    log.info(
        fields(event="listening", host=host, port=bound_port, model=model_dir, max_files=files)
        + " "
        + settings.describe()
    )
    app = DetectorApp(model_dir, settings)
    config = uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        lifespan="on",
        interface="asgi3",
        workers=settings.workers,
        backlog=settings.backlog,
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=int(settings.drain_seconds),
        log_config=log_config(settings.log_level),
        access_log=False,
        server_header=False,
        proxy_headers=False,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )
    stopped = threading.Event()
    line = f"detector: serving {model_dir} on {url} (GET /ping, POST /invocations; {settings.workers} worker(s))"
    signals: list[str] = []
    try:
        if settings.workers == 1:
            app.start()  # here, so a model that cannot load is this command's error
            _announce_when_ready(url, line, announce or _print_flushed, stopped)
            _serve_one(config, sock, signals)
        else:
            _announce_when_ready(url, line, announce or _print_flushed, stopped)
            _serve_many(config, sock, signals)
    finally:
        stopped.set()
        sock.close()
    if not signals:
        raise ServeError(
            "the workers stopped without being asked to (see the event=startup_failed lines above)",
            fix="check the model folder (export it again) and the memory the workers have",
        )
    log.info(fields(event="stopped", pid=os.getpid(), signal=signals[0]))
    return True


def _log_drain(signum: int, signals: list[str]) -> None:
    name = signal.Signals(signum).name
    if not signals:
        log.info(fields(event="drain", pid=os.getpid(), signal=name) + " no new connections; finishing requests")
    signals.append(name)


def _serve_one(config: Any, sock: socket.socket, signals: list[str]) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            _log_drain(sig, signals)
            super().handle_exit(sig, frame)

    # uvicorn re-raises the signal it caught once it has shut down: to these, so the exit is 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_many(config: Any, sock: socket.socket, signals: list[str]) -> None:
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Supervisor(Multiprocess):
        def handle_term(self) -> None:
            _log_drain(signal.SIGTERM, signals)
            super().handle_term()

        def handle_int(self) -> None:
            _log_drain(signal.SIGINT, signals)
            super().handle_int()

    Supervisor(config, sockets=[sock]).run()
