"""The server under load and hostile clients, over real sockets on 127.0.0.1.

- 200 keep-alive clients for 10 s (each request bounded): no connection is reset, every answer
  is 200 or 503 (with Retry-After), and the server's memory comes back under a bound.
- 300 stalled clients (silent, half a request head, half a body) do not stop a normal request,
  and a half-sent body is answered 408 once SAGEMAKER_MODEL_SERVER_TIMEOUT passes.
- Clients that go away mid-request are one log line each, never a traceback.
- SAGEMAKER_MODEL_SERVER_WORKERS starts that many workers; SAGEMAKER_CONTAINER_LOG_LEVEL=WARNING
  keeps successful requests out of the log but not failed ones.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector import config
from detector.serve.load import run_load
from tests.detector.conftest import ExportedFixture
from tests.detector.serving import Server, children, request, rss_bytes, start_server
from tests.detector.support import encode, leaf_image

pytestmark = pytest.mark.slow

TIMEOUT = 10  # SAGEMAKER_MODEL_SERVER_TIMEOUT for these servers: the stalled body gets 408 after it
# What the load may leave behind in the server once it is over (allocator caches, TF's pools).
MEMORY_GROWTH_BOUND = 256 * 1024 * 1024


def _stop(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    return server.process.wait(60)


@pytest.fixture(scope="module")
def server(exported_model: ExportedFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("serve-load") / "server.log"
    env = {**os.environ, config.SERVE_TIMEOUT_ENV: str(TIMEOUT)}
    running = start_server(exported_model.path, log_path, "--port", "0", env=env)
    yield running
    assert _stop(running) == 0
    assert "Traceback" not in running.log()


def test_200_clients_get_no_resets_and_only_200_or_503(server: Server) -> None:
    body = encode(leaf_image(64, 48, seed=9), "PNG")
    assert request(server, "POST", "/invocations", body, "image/png")[0] == 200
    before = rss_bytes(server.process.pid)
    result = run_load(
        server.host, server.port, body=body, content_type="image/png", clients=200, seconds=10, request_timeout=30
    )
    print(result.summary())
    assert result.resets == 0
    assert result.timeouts == 0
    assert set(result.statuses) <= {200, 503}, result.statuses
    assert result.statuses[200] > 0
    # 200 clients at once against a queue of 16: the overflow is told to come back, not queued.
    assert result.statuses[503] > 0
    assert result.percentile(0.99) < 30
    deadline = time.monotonic() + 30
    while rss_bytes(server.process.pid) > before + MEMORY_GROWTH_BOUND and time.monotonic() < deadline:
        time.sleep(0.5)
    after = rss_bytes(server.process.pid)
    assert after <= before + MEMORY_GROWTH_BOUND, f"RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB"
    assert request(server, "GET", "/ping")[0] == 200


def _stalled(server: Server, count: int, payload: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((server.host, server.port), timeout=30)
        if payload:
            sock.sendall(payload)
        sockets.append(sock)
    return sockets


def test_stalled_clients_do_not_block_others_and_a_stalled_body_gets_408(server: Server) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"
    silent = _stalled(server, 100, b"")
    half_head = _stalled(server, 100, head[:30])
    half_body = _stalled(server, 100, head + b"\x89PNG")
    try:
        started = time.monotonic()
        png = encode(leaf_image(50, 40, seed=1), "PNG")
        assert request(server, "POST", "/invocations", png, "image/png")[0] == 200
        assert time.monotonic() - started < TIMEOUT, "a normal request waited behind stalled ones"
        answer = b""
        half_body[0].settimeout(TIMEOUT + 30)
        while b"\r\n\r\n" not in answer and (chunk := half_body[0].recv(4096)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    finally:
        for sock in silent + half_head + half_body:
            sock.close()
    assert request(server, "GET", "/ping")[0] == 200


def test_clients_that_go_away_are_one_line_each_without_a_traceback(server: Server) -> None:
    png = encode(leaf_image(120, 90, seed=3), "PNG")
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n"
    for _ in range(5):  # the body half sent, then gone
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(head.encode() + png[:100])
    for _ in range(5):  # the whole request, gone before the answer
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(head.encode() + png)
    assert request(server, "GET", "/ping")[0] == 200
    deadline = time.monotonic() + 30
    while server.log().count("status=499") < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    log = server.log()
    assert log.count("status=499") >= 5
    assert "Traceback" not in log and "BrokenPipe" not in log


def test_workers_and_log_level_come_from_sagemakers_variables(exported_model: ExportedFixture, tmp_path: Path) -> None:
    env = {**os.environ, config.SERVE_WORKERS_ENV: "2", config.SERVE_LOG_LEVEL_ENV: "WARNING"}
    server = start_server(exported_model.path, tmp_path / "server.log", "--port", "0", env=env)
    try:
        workers = [pid for pid in children(server.process.pid) if b"spawn_main" in _cmdline(pid)]
        assert len(workers) == 2, server.log()
        png = encode(leaf_image(50, 40, seed=1), "PNG")
        for _ in range(4):
            assert request(server, "POST", "/invocations", png, "image/png")[0] == 200
        assert request(server, "POST", "/invocations", b"nope", "image/png")[0] == 400
    finally:
        code = _stop(server)
    log = server.log()
    assert code == 0, log
    assert "status=200" not in log and "event=startup " not in log  # INFO lines: below WARNING
    assert log.count("status=400") == 1 and "WARNING detector.serve: event=request" in log
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the server"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
