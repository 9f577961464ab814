"""The HTTP server over real sockets: SageMaker's /ping and /invocations, errors, load, shutdown.

The server runs as ``python -m detector serve`` in a subprocess, the way SageMaker starts it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector import config
from detector.__main__ import main
from detector.errors import ServeError
from detector.serve import decode_image_bytes, resolve_port
from tests.detector.conftest import ExportedFixture
from tests.detector.serving import Server, request, start_server
from tests.detector.support import assert_same_detections, encode, leaf_image


def invoke(server: Server, body: bytes, content_type: str | None) -> Any:
    return request(server, "POST", "/invocations", body, content_type)


@pytest.fixture(scope="module")
def server(exported_model: ExportedFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    running = start_server(exported_model.path, log_path, "--port", "0")
    yield running
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(30) == 0


def test_ping_answers_200_once_loaded(server: Server) -> None:
    assert request(server, "GET", "/ping") == (200, {"status": "ok"})


def test_png_and_jpeg_bodies_give_the_in_process_detections(server: Server, predictor: Any) -> None:
    image = leaf_image(180, 120, seed=11)
    status, payload = invoke(server, encode(image, "PNG"), "image/png")
    assert status == 200 and len(payload["predictions"]) == 1
    assert payload["predictions"][0], "the fixture model should detect something"
    assert_same_detections(payload["predictions"][0], predictor.predict(image))

    jpeg = encode(image, "JPEG")
    status, payload = invoke(server, jpeg, "image/jpeg")
    assert status == 200
    assert_same_detections(payload["predictions"][0], predictor.predict(decode_image_bytes(jpeg)))


def test_json_instances_as_pixel_lists_and_base64(server: Server, predictor: Any) -> None:
    images = [leaf_image(64, 48, seed=1), leaf_image(90, 140, seed=2), leaf_image(130, 100, seed=3)]
    jpeg = encode(images[2], "JPEG")
    instances = [
        images[0].tolist(),
        {"b64": base64.b64encode(encode(images[1], "PNG")).decode()},
        {"b64": base64.b64encode(jpeg).decode()},
    ]
    body = json.dumps({"instances": instances}).encode()
    status, payload = invoke(server, body, "application/json; charset=utf-8")
    assert status == 200 and len(payload["predictions"]) == 3
    expected = [predictor.predict(images[0]), predictor.predict(images[1]), predictor.predict(decode_image_bytes(jpeg))]
    for got, want in zip(payload["predictions"], expected, strict=True):
        assert_same_detections(got, want)


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only its header (IHDR) claiming ``width`` x ``height``, and its end."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _json(instances: Any) -> bytes:
    return json.dumps({"instances": instances}).encode()


GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
TRUNCATED_JPEG = encode(leaf_image(200, 150, seed=5), "JPEG")[:1500]
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
TF_INTERNALS = ("tensorflow", "node ", "Op:", "[[", "kernel")


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("text/plain", b"hello", 415, "Content-Type text/plain is not supported"),
        (None, b"hello", 415, "Content-Type none is not supported"),
        ("image/png", b"this is not an image", 400, "not a JPEG or PNG image"),
        ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, 400, "image"),
        ("image/png", GIF, 400, "GIF image"),
        ("image/png", b"", 400, "body is empty"),
        ("application/json", b"", 400, "body is empty"),
        ("application/json", b"{not json", 400, "not JSON"),
        ("application/json", b'{"inputs": []}', 400, '{"instances": [...]}'),
        ("application/json", _json([]), 400, '"instances" is empty'),
        ("application/json", _json([[]]), 400, "instance 0: empty image"),
        ("application/json", _json([[[]]]), 400, "instance 0: empty image"),
        ("application/json", _json([[[[1, 2, 3]]], [[1, 2]]]), 400, "instance 1: expected height x width x 3"),
        ("application/json", _json([[[[1, 2, 3]], [[1, 2]]]]), 400, "instance 0: rows of different lengths"),
        ("application/json", _json([[[[0, 300, 0]]]]), 400, "0-255"),
        ("application/json", _json([[[[0.5, 1, 2]]]]), 400, "integers"),
        ("application/json", _json([{"b64": "***"}]), 400, "not valid base64"),
        ("application/json", _json([{"b64": base64.b64encode(b"text").decode()}]), 400, "instance 0 is not a JPEG"),
        ("application/json", _json(["x"]), 400, "instance 0: expected"),
        # A header claiming 20000x20000: Pillow's DecompressionBombError, answered with our limit.
        ("image/png", png_header(20_000, 20_000), 400, "40,000,000 pixel limit"),
        ("image/png", png_header(7_000, 7_000), 400, "7000x7000 pixels, over the 40,000,000 pixel limit"),
        ("application/json", _json([{"b64": base64.b64encode(png_header(20_000, 20_000)).decode()}]), 400, "limit"),
        ("image/jpeg", TRUNCATED_JPEG, 400, "damaged or truncated JPEG image"),
        ("application/json", DEEP_JSON, 400, "JSON nests 100000 levels deep, over the limit of 8"),
        ("application/json", b'{"instances": [[[[[[[[[[1]]]]]]]]]]}', 400, "over the limit of 8"),
    ],
)
def test_bad_requests_get_a_json_error(
    server: Server, content_type: str | None, body: bytes, status: int, message: str
) -> None:
    got, payload = invoke(server, body, content_type)
    assert got == status, payload
    assert message in payload["error"]
    assert not any(word in json.dumps(payload) for word in TF_INTERNALS), payload


def test_accept_must_allow_json(server: Server) -> None:
    png = encode(leaf_image(40, 30, seed=2), "PNG")
    for accept, status in [
        ("image/png", 406),
        ("text/csv, image/*", 406),
        ("application/json;q=0", 406),
        ("application/json", 200),
        ("*/*", 200),
        ("text/html, application/*;q=0.5", 200),
    ]:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            connection.request(
                "POST", "/invocations", body=png, headers={"Content-Type": "image/png", "Accept": accept}
            )
            response = connection.getresponse()
            payload = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == status, (accept, payload)
        if status == 406:
            assert "application/json" in payload["error"] and "fix" in payload


def test_http_11_keep_alive_serves_many_requests_on_one_connection(server: Server) -> None:
    png = encode(leaf_image(40, 30, seed=4), "PNG")
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        sockets = set()
        for body, content_type, status in [(png, "image/png", 200), (b"x", "text/plain", 415), (png, "image/png", 200)]:
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            response.read()
            assert (response.status, response.version) == (status, 11)
            assert response.getheader("connection") != "close"
            sockets.add(id(connection.sock))
        assert len(sockets) == 1, "the connection was closed between requests"
    finally:
        connection.close()


def test_oversized_bodies_get_413_and_the_server_carries_on(server: Server) -> None:
    status, payload = invoke(server, b"\0" * (config.MAX_REQUEST_BYTES + 1), "image/png")
    assert status == 413 and "limit" in payload["error"] and "fix" in payload
    assert request(server, "GET", "/ping")[0] == 200


def test_other_paths_and_methods(server: Server) -> None:
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/ping", b"x", "image/png")[0] == 404
    assert request(server, "GET", "/invocations")[0] == 405
    assert request(server, "GET", "/execution-parameters")[0] == 200


def test_concurrent_requests_are_all_answered_correctly(server: Server, predictor: Any) -> None:
    images = [leaf_image(60 + 13 * i, 150 - 7 * i, seed=100 + i) for i in range(12)]
    expected = [predictor.predict(image) for image in images]

    def call(image: np.ndarray) -> Any:
        return invoke(server, encode(image, "PNG"), "image/png")

    with ThreadPoolExecutor(max_workers=len(images)) as pool:
        answers = list(pool.map(call, images))
    for (status, payload), want in zip(answers, expected, strict=True):
        assert status == 200
        assert_same_detections(payload["predictions"][0], want)
    latencies = [
        float(ms) for ms in re.findall(r"status=200 bytes_in=\d+ images=1 bytes_out=\d+ ms=([\d.]+)", server.log())
    ]
    assert len(latencies) >= len(images)
    print(f"server-side latency per image: median {np.median(latencies):.1f} ms, max {max(latencies):.1f} ms")


@pytest.mark.slow
def test_sigterm_drains_an_in_flight_request_and_exits_0(exported_model: ExportedFixture, tmp_path: Path) -> None:
    # Also checks that SageMaker's port variable is honoured when --port is not given.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, config.SERVE_PORT_ENV: str(port)}
    server = start_server(exported_model.path, tmp_path / "server.log", env=env)
    assert server.port == port
    image = leaf_image(100, 100, seed=3)
    body = encode(image, "PNG")
    with socket.create_connection((server.host, server.port), timeout=60) as slow:
        head = (
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        slow.sendall(head.encode() + body[:100])
        time.sleep(0.5)  # the server has accepted it and waits for the rest of the body
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.process.poll() is None, "the server exited with a request in flight"
        slow.sendall(body[100:])
        response = b""
        while chunk := slow.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    assert b" 200 " in status_line
    assert len(json.loads(rest.split(b"\r\n\r\n", 1)[1])["predictions"][0]) > 0
    assert server.process.wait(30) == 0
    log = server.log()
    assert "event=drain" in log and "signal=SIGTERM" in log
    assert "event=shutdown" in log and "served=1" in log and "event=stopped" in log


def test_port_resolution_follows_option_then_environment_then_default() -> None:
    assert resolve_port(None, {}) == 8080
    assert resolve_port(None, {config.SERVE_PORT_ENV: "9000"}) == 9000
    assert resolve_port(7000, {config.SERVE_PORT_ENV: "9000"}) == 7000
    with pytest.raises(ServeError, match="not a whole number"):
        resolve_port(None, {config.SERVE_PORT_ENV: "http"})  # "is not a whole number"
    with pytest.raises(ServeError, match="outside"):
        resolve_port(70000, {})


def test_cli_serve_errors_are_one_line_and_a_fix(
    exported_model: ExportedFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["serve", "--model-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no saved_model.pb" in err[0] and err[1].startswith("  fix: ")

    monkeypatch.setenv(config.SERVE_PORT_ENV, "eighty")
    assert main(["serve", "--model-dir", str(exported_model.path), "--host", "127.0.0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a whole number" in err[0] and err[1].startswith("  fix: ")


def _serve_as_another_user(model: Path) -> tuple[int, str]:
    """(exit status, stderr) of ``python -m detector serve`` on ``model`` run by uid 65534 when we
    are root (else by us). Forked, not exec'd: this machine's interpreter lives under a 0700
    /root, where nobody may not exec it; what the command imports is imported beforehand."""
    import logging.config  # noqa: F401  (run_server imports these first)

    import uvicorn  # noqa: F401

    import detector.serve  # noqa: F401

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            os.close(read_end)
            sys.stderr = os.fdopen(write_end, "w")
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            code = main(["serve", "--model-dir", str(model), "--port", "0"])
        except BaseException as error:
            print(f"Traceback: {error!r}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        err = stream.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


def test_an_unreadable_model_folder_is_one_error_with_the_chmod_that_fixes_it(
    exported_model: ExportedFixture, tmp_path: Path
) -> None:
    # A root-owned 0700 export mounted into a container whose server runs as another user. As
    # root (CI), the server runs as nobody; otherwise a subfolder is made unreadable for us.
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    base.chmod(0o755)
    model = base / "model"
    shutil.copytree(exported_model.path, model)
    as_root = os.geteuid() == 0
    locked = model if as_root else model / "variables"
    locked.chmod(0o700 if as_root else 0o000)
    try:
        code, err = _serve_as_another_user(model)
    finally:
        locked.chmod(0o755)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 2, err
    assert lines[0].startswith(f"detector: error: {model}: not readable by this user (uid ")
    assert lines[1] == f"  fix: make it readable for every user: chmod -R a+rX {model} " + (
        "(exports written by `python -m detector export` are 0755/0644, as model.tar.gz extracts)"
    )
