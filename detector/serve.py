"""An HTTP server for an exported detector that follows SageMaker's container contract.

``python -m detector serve`` (what ``docker run IMAGE serve`` runs) loads the export from
``--model-dir`` (default ``/opt/ml/model``), warms it up, then listens on ``--port``, else
``$SAGEMAKER_BIND_TO_PORT``, else 8080:

- ``GET /ping``: 200 once the model is loaded (the server only listens after that).
- ``POST /invocations``: ``image/jpeg``, ``image/png`` (or ``application/x-image``) bytes, or
  TF-Serving JSON ``{"instances": [...]}`` whose instances are HxWx3 lists of 0-255 ints or
  ``{"b64": "<base64 JPEG/PNG>"}``. Answers ``{"predictions": [[detection, ...], ...]}``, one list
  per image, boxes in pixels of that image. Errors are JSON ``{"error": ..., "fix": ...}``: 413
  over 6 MiB (InvokeEndpoint's limit), 415 for another content type, 400 for a body that is not
  an image (or JSON of images), 411 without Content-Length.
- SIGTERM (or SIGINT) stops accepting connections, lets in-flight requests finish (up to 25 s:
  SageMaker kills the container 30 s after SIGTERM) and returns, so the command exits 0.

Each request is handled on its own thread (stdlib ``ThreadingHTTPServer``); the model runs one
call at a time (see :class:`detector.export.Predictor`). Responses close the connection
(HTTP/1.0): an idle keep-alive connection would otherwise hold shutdown for its whole timeout.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import io
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from detector import config
from detector.errors import InvalidImageError, RequestError, ServeError
from detector.export import Predictor, load_exported

log = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "application/x-image"})
JSON_TYPE = "application/json"
# Bodies over the limit are read and dropped up to this size, so the client reads our 413
# instead of a connection reset; beyond it the connection is simply closed.
_DISCARD_LIMIT = 8 * config.MAX_REQUEST_BYTES
_ERROR_FIX = {
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "send Content-Type image/jpeg, image/png or application/json",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "send a smaller image (resize it; the model sees at most image_size px)",
    HTTPStatus.LENGTH_REQUIRED: "send the body with a Content-Length header (not chunked)",
}


def resolve_port(port: int | None, environ: dict[str, str] | None = None) -> int:
    """The port to listen on: ``port``, else $SAGEMAKER_BIND_TO_PORT, else 8080. Raises ServeError."""
    environ = dict(os.environ) if environ is None else environ
    if port is None:
        raw = environ.get(config.SERVE_PORT_ENV, "").strip()
        if not raw:
            return config.SERVE_PORT
        try:
            port = int(raw)
        except ValueError:
            raise ServeError(
                f"{config.SERVE_PORT_ENV}={raw!r} is not a port number",
                fix=f"set {config.SERVE_PORT_ENV} to a number in 1-65535, or pass --port",
            ) from None
    if not 0 <= port <= 65535:
        raise ServeError(f"port {port} is outside 0-65535", fix="pass --port 8080 (0 picks a free port)")
    return port


def decode_image_bytes(data: bytes, *, what: str = "body") -> np.ndarray:
    """A JPEG or PNG as an HxWx3 uint8 RGB array, decoded as training decodes (tf.io.decode_image).

    Grey and RGBA images become RGB. Raises InvalidImageError for empty bytes, other formats,
    corrupt files and images over ``config.MAX_IMAGE_PIXELS``.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidImageError(f"{what} is empty: send the bytes of a JPEG or PNG image")
    try:
        # Reads the header only: the format and the size, before anything is decoded.
        with Image.open(io.BytesIO(data)) as header:
            kind, (width, height) = header.format, header.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidImageError(f"{what} is not a JPEG or PNG image") from None
    if kind not in ("JPEG", "PNG"):
        raise InvalidImageError(f"{what} is a {kind} image; send JPEG or PNG")
    if width * height > config.MAX_IMAGE_PIXELS:
        raise InvalidImageError(f"{what} is {width}x{height} pixels, over the {config.MAX_IMAGE_PIXELS:,} pixel limit")
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise InvalidImageError(f"{what} is a damaged {kind} image ({error.message.splitlines()[0]})") from None
    return np.asarray(image.numpy(), dtype=np.uint8)


def _instance_image(instance: Any, index: int) -> np.ndarray:
    what = f"instance {index}"
    if isinstance(instance, dict):
        if set(instance) != {"b64"} or not isinstance(instance["b64"], str):
            raise InvalidImageError(f'{what}: an object instance must be {{"b64": "<base64 JPEG or PNG>"}}')
        try:
            data = base64.b64decode(instance["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidImageError(f"{what}: b64 is not valid base64 ({error})") from None
        return decode_image_bytes(data, what=what)
    if not isinstance(instance, list):
        raise InvalidImageError(f"{what}: expected a height x width x 3 list of 0-255 ints or {{'b64': ...}}")
    try:
        array = np.asarray(instance)
    except ValueError:
        raise InvalidImageError(f"{what}: rows of different lengths: not a height x width x 3 image") from None
    if array.size == 0:
        raise InvalidImageError(f"{what}: empty image (no pixels)")
    if array.ndim != 3 or array.shape[2] != 3:
        raise InvalidImageError(f"{what}: expected height x width x 3, got shape {list(array.shape)}")
    if array.dtype.kind not in "iu":
        raise InvalidImageError(f"{what}: pixels must be integers 0-255, got {array.dtype.name} values")
    if array.min() < 0 or array.max() > 255:
        raise InvalidImageError(f"{what}: pixels must be 0-255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def parse_invocation(content_type: str | None, body: bytes) -> list[np.ndarray]:
    """The images of an /invocations request, as HxWx3 uint8 arrays.

    Raises RequestError (415) for another content type, InvalidImageError for a body that is
    not an image or TF-Serving JSON of images.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in IMAGE_TYPES:
        return [decode_image_bytes(body)]
    if media_type != JSON_TYPE:
        shown = media_type or "none"
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {shown} is not supported: send image/jpeg, image/png or application/json",
        )
    if not body:
        raise InvalidImageError('body is empty: send {"instances": [...]}')
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidImageError(f"body is not JSON ({error})") from None
    instances = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(instances, list):
        raise InvalidImageError('expected a JSON object {"instances": [...]}')
    if not instances:
        raise InvalidImageError('"instances" is empty: send at least one image')
    return [_instance_image(instance, index) for index, instance in enumerate(instances)]


class InvocationHandler(BaseHTTPRequestHandler):
    server: DetectorServer
    server_version = "detector"
    # Seconds a client may take to send its request: a stalled one must not hold a thread forever.
    timeout = 60

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/ping":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif path == "/execution-parameters":  # asked by SageMaker batch transform
            self._send_json(
                HTTPStatus.OK,
                {"MaxConcurrentTransforms": 1, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 6},
            )
        elif path == "/invocations":
            self._send_error(RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for /invocations"))
        else:
            self._send_error(RequestError(HTTPStatus.NOT_FOUND, f"no such path {path}: use /ping or /invocations"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/invocations":
            self._discard_body()
            self._send_error(RequestError(HTTPStatus.NOT_FOUND, f"no such path {path}: POST to /invocations"))
            return
        started = time.perf_counter()
        try:
            body = self._read_body()
            images = parse_invocation(self.headers.get("Content-Type"), body)
            predictions = self.server.predict(images)
        except RequestError as error:
            self._send_error(error)
        except (TimeoutError, ConnectionError) as error:
            log.info("client went away before its request was complete (%s)", error)
            self.close_connection = True
        except InvalidImageError as error:
            self._send_error(RequestError(HTTPStatus.BAD_REQUEST, error.headline, fix=error.fix))
        except Exception:
            log.exception("invocation failed")
            self._send_error(RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "prediction failed: see the server log"))
        else:
            self._send_json(HTTPStatus.OK, {"predictions": predictions})
            log.info("invocation: %d image(s) in %.1f ms", len(images), 1000 * (time.perf_counter() - started))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not supported")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "the request has no Content-Length")
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {raw!r} is not a size") from None
        if length > self.server.max_body_bytes:
            self._discard(length)
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body is {length:,} bytes, over the {self.server.max_body_bytes:,} byte limit",
            )
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"body ended after {len(body)} of {length} bytes")
        return body

    def _discard_body(self) -> None:
        try:
            self._discard(int(self.headers.get("Content-Length") or 0))
        except ValueError:
            self.close_connection = True

    def _discard(self, length: int) -> None:
        if length > _DISCARD_LIMIT:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _send_error(self, error: RequestError) -> None:
        payload: dict[str, Any] = {"error": error.headline}
        fix = error.fix or _ERROR_FIX.get(HTTPStatus(error.status))
        if fix:
            payload["fix"] = fix
        self._send_json(error.status, payload)
        log.info("%s %s -> %d: %s", self.command, self.path, error.status, error.headline)

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class DetectorServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its predictor and how many requests are in flight."""

    daemon_threads = True  # a request stuck past the drain timeout must not keep the process alive
    block_on_close = False  # server_close() must not join them either: drain() does the waiting
    allow_reuse_address = True
    request_queue_size = 64  # bursts of connections wait in the backlog instead of being refused

    def __init__(
        self, address: tuple[str, int], predictor: Predictor, *, max_body_bytes: int = config.MAX_REQUEST_BYTES
    ) -> None:
        super().__init__(address, InvocationHandler)
        self.predictor = predictor
        self.max_body_bytes = max_body_bytes
        # Every request thread is new, and TensorFlow sets up per-thread state on a thread's first
        # call: one long-lived worker runs the model instead (the predictor serialises calls anyway).
        self._model_worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._in_flight = 0
        self._idle = threading.Condition()

    def predict(self, images: list[np.ndarray]) -> list[list[Any]]:
        """Detections for each image, computed on the model worker thread."""
        return self._model_worker.submit(lambda: [self.predictor.predict(image) for image in images]).result()

    def server_close(self) -> None:
        super().server_close()
        self._model_worker.shutdown(wait=False)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted here, on the accepting thread, so a drain never misses a request just accepted.
        with self._idle:
            self._in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._finished()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("request from %s failed", client_address[0] if client_address else "?")

    def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight (True) or ``timeout`` seconds pass (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)


def make_server(
    predictor: Predictor, *, host: str = config.SERVE_HOST, port: int = config.SERVE_PORT
) -> DetectorServer:
    """Bind a DetectorServer (port 0 picks a free one). Raises ServeError when it cannot bind."""
    try:
        return DetectorServer((host, port), predictor)
    except OSError as error:
        raise ServeError(
            f"cannot listen on {host}:{port} ({error.strerror or error})",
            fix="pass another --port (or stop what uses it), and a --host this machine has",
        ) from None


def warm_up(predictor: Predictor) -> float:
    """Run one prediction so the first request does not pay for graph setup; returns seconds."""
    started = time.perf_counter()
    size = predictor.metadata.image_size
    predictor.predict(np.zeros((size, size, 3), dtype=np.uint8))
    return time.perf_counter() - started


def _print_flushed(line: str) -> None:
    print(line, flush=True)  # stdout is often a file or pipe: buffered, the line would come late


def run_server(
    *,
    model_dir: Path,
    host: str = config.SERVE_HOST,
    port: int | None = None,
    drain_seconds: float = config.DRAIN_SECONDS,
    announce: Callable[[str], None] | None = None,
) -> bool:
    """Serve ``model_dir`` until SIGTERM or SIGINT, then drain and close.

    ``announce`` gets one line with the URL once the server listens (tests and ``deploy`` wait
    for it). Must run on the main thread (it installs signal handlers). Returns True when every
    in-flight request finished within ``drain_seconds``. Raises ExportFormatError for a model
    folder that is not an export, ServeError when it cannot listen.
    """
    started = time.perf_counter()
    port = resolve_port(port)  # before the slow part: a bad setting fails at once
    predictor = load_exported(Path(model_dir))
    warm = warm_up(predictor)
    server = make_server(predictor, host=host, port=port)

    def stop(signum: int, _frame: Any) -> None:
        log.info("received %s: no new requests; draining", signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, which runs on this (the main) thread.
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("model loaded in %.1f s (warm-up %.2f s)", time.perf_counter() - started, warm)
        (announce or _print_flushed)(f"detector: serving {model_dir} on {server.url} (GET /ping, POST /invocations)")
        server.serve_forever(poll_interval=0.2)
        drained = server.drain(drain_seconds)
        if not drained:
            log.warning("requests still running after %.0f s; closing anyway", drain_seconds)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("server stopped")
    return drained
