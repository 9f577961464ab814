"""The ASGI application behind ``python -m detector serve``: routes, limits, back-pressure, logs.

One :class:`DetectorApp` per worker process. Connections, HTTP/1.1 parsing, keep-alive and
shutdown belong to the HTTP server (uvicorn, see :mod:`detector.serve.server`); this module
decides what each request gets:

- ``GET /ping`` 200 once the model is loaded; ``GET /execution-parameters`` (batch transform).
- ``POST /invocations``, checked in this order, cheapest first: 406 when ``Accept`` excludes
  JSON; 503 + ``Retry-After`` when ``max_queue`` requests are already admitted (the body is not
  read); 413 over the body limit (``Content-Length`` or counted while reading); 408 when the
  body takes longer than ``timeout`` to arrive; then the images are decoded and predicted on the
  worker's model thread: 400/415 for a bad body (:mod:`detector.serve.payload`), 504 when the
  answer is not ready within ``timeout``, 500 (details in the log only) for a failure of ours.
- Every response is JSON; errors are ``{"error": ..., "fix": ...}``. Every request ends in one
  log line (``event=request status=... bytes_in=... bytes_out=... ms=...``): INFO when it
  succeeded, WARNING when refused, ERROR for 5xx; ``/ping`` at DEBUG. A client that goes away
  is one line too (``status=499``), never a traceback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from detector.errors import DetectorError, InvalidImageError, RequestError
from detector.export import SIGNATURE, Predictor, load_exported
from detector.serve.payload import accepts_json, invalid_image, parse_invocation
from detector.serve.settings import ServeSettings

log = logging.getLogger("detector.serve")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Bodies over the limit are read and dropped up to this size, so the client reads our 413
# instead of a connection reset; beyond it the connection is closed after the answer.
DISCARD_FACTOR = 8
CLIENT_CLOSED = 499  # nginx's code for "the client went away first": only in the log
_FIXES = {
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "send Content-Type image/jpeg, image/png or application/json",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "send a smaller image (the model sees it resized to image_size anyway)",
    HTTPStatus.NOT_ACCEPTABLE: "send Accept: application/json (or no Accept header)",
    HTTPStatus.SERVICE_UNAVAILABLE: "retry after the Retry-After seconds, or add workers or instances",
    HTTPStatus.REQUEST_TIMEOUT: "send the whole body at once, within the server's timeout",
}


def fields(**values: Any) -> str:
    """``key=value`` pairs for a log line; values with spaces or quotes are JSON-quoted."""
    parts = []
    for key, value in values.items():
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        if not text or any(c in text for c in ' "=\n'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class _Answer(Exception):
    """Stop handling a request with this response (raised inside the app only)."""

    def __init__(
        self,
        error: RequestError,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        close: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(error.headline)
        self.error, self.headers, self.close = error, headers, close
        self.detail = detail  # for the log line only, never the client


class DetectorApp:
    """An ASGI app for one worker. Give ``predictor`` to serve a model already loaded; without
    it, the lifespan startup loads ``model_dir`` (what each spawned worker does)."""

    def __init__(self, model_dir: Path, settings: ServeSettings, predictor: Predictor | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.settings = settings
        self.predictor = predictor
        self._model_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._admitted = 0  # requests handed to the model thread and not finished there
        self._buffered = 0  # bytes reserved by bodies being read
        self._served = 0
        self._refused = 0
        self._job_seconds = 0.05  # a running estimate of one request's model time, for Retry-After

    def __getstate__(self) -> dict[str, Any]:
        # Spawned workers get the model folder and settings, and load the model themselves.
        return {"model_dir": self.model_dir, "settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model_dir"], state["settings"])  # type: ignore[misc]

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    # -- lifespan ---------------------------------------------------------------------------------
    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self.start)
                except DetectorError as error:
                    log.error(fields(event="startup_failed", pid=os.getpid(), error=error.headline, fix=error.fix))
                    await send({"type": "lifespan.startup.failed", "message": error.headline})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Load the model (unless given), warm it up, start the model thread; logs event=startup.

        Does nothing the second time (run_server starts a single worker before uvicorn does).
        """
        if self._model_thread is not None:
            return
        started = time.perf_counter()
        if self.predictor is None:
            self.predictor = load_exported(self.model_dir)
        loaded = time.perf_counter() - started
        self._model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        # Warm up on the model thread itself: TensorFlow sets up per-thread state on a first call.
        warm = self._model_thread.submit(warm_up, self.predictor).result()
        metadata = self.predictor.metadata
        log.info(
            fields(
                event="startup",
                pid=os.getpid(),
                model=self.model_dir,
                signature=SIGNATURE,
                classes=len(metadata.class_names),
                image_size=metadata.image_size,
                load_s=loaded,
                warmup_s=warm,
                workers=self.settings.workers,
                max_queue=self.settings.max_queue,
            )
        )

    def stop(self) -> None:
        """Stop the model thread; logs event=shutdown with what this worker served."""
        if self._model_thread is not None:
            self._model_thread.shutdown(wait=True)
        log.info(fields(event="shutdown", pid=os.getpid(), served=self._served, refused=self._refused))

    # -- requests ---------------------------------------------------------------------------------
    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        outcome: dict[str, Any] = {"bytes_in": 0}
        status: int = HTTPStatus.INTERNAL_SERVER_ERROR
        try:
            status, payload, extra = await self._route(method, path, headers, receive, outcome)
        except _Answer as answer:
            status, extra = HTTPStatus(answer.error.status), answer.headers
            payload = {"error": answer.error.headline}
            fix = answer.error.fix or _FIXES.get(HTTPStatus(status))
            if fix:
                payload["fix"] = fix
            outcome["error"] = answer.detail or answer.error.headline
            if answer.close:
                extra = (*extra, ("connection", "close"))
        if status == CLIENT_CLOSED:
            self._log(method, path, CLIENT_CLOSED, outcome, started)
            return
        body = json.dumps(payload).encode()
        response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        response_headers += [(k.encode(), v.encode()) for k, v in extra]
        await send({"type": "http.response.start", "status": int(status), "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        outcome["bytes_out"] = len(body)
        self._log(method, path, int(status), outcome, started)

    async def _route(
        self, method: str, path: str, headers: dict[str, str], receive: Receive, outcome: dict[str, Any]
    ) -> tuple[int, Any, tuple[tuple[str, str], ...]]:
        if path == "/ping" and method in ("GET", "HEAD"):
            return HTTPStatus.OK, {"status": "ok"}, ()
        if path == "/execution-parameters" and method == "GET":
            return (
                HTTPStatus.OK,
                {"MaxConcurrentTransforms": 1, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 6},
                (),
            )
        if path == "/invocations":
            if method != "POST":
                raise _Answer(
                    RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for /invocations"), (("allow", "POST"),)
                )
            return await self._invocation(headers, receive, outcome)
        known = "GET /ping or POST /invocations"
        raise _Answer(RequestError(HTTPStatus.NOT_FOUND, f"no such path {method} {path}: use {known}"))

    async def _invocation(
        self, headers: dict[str, str], receive: Receive, outcome: dict[str, Any]
    ) -> tuple[int, Any, tuple[tuple[str, str], ...]]:
        if not accepts_json(headers.get("accept")):
            raise _Answer(
                RequestError(
                    HTTPStatus.NOT_ACCEPTABLE,
                    f"Accept {headers['accept']!r} excludes application/json, the only type this server answers in",
                )
            )
        self._refuse_when_busy()  # before reading: a full queue costs the client no upload
        declared = headers.get("content-length", "")
        reserved = int(declared) if declared.isdigit() else self.settings.max_body_bytes
        if self._buffered and self._buffered + reserved > self.settings.max_buffered_bytes:
            self._refused += 1
            raise _Answer(
                RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "busy: too many bodies are being uploaded at once"),
                (("retry-after", "1"),),
            )
        # Uploads are not in the queue: a client that stalls mid-body holds its connection and
        # its bytes (bounded above, and by the timeout), never a place in front of the model.
        self._buffered += reserved
        try:
            body = await self._read_body(headers, receive, outcome)
        finally:
            self._buffered -= reserved
        if body is None:
            return CLIENT_CLOSED, None, ()
        self._refuse_when_busy()
        # From here the request holds its place until the model thread is done with it, even
        # when its client is answered 504 first: the queue bounds the model thread's work.
        self._admitted += 1
        images, payload = await self._predict(headers.get("content-type"), body)
        outcome["images"] = images
        self._served += 1
        return HTTPStatus.OK, payload, ()

    def _refuse_when_busy(self) -> None:
        if self._admitted < self.settings.max_queue:
            return
        self._refused += 1
        retry = max(1, math.ceil(self._admitted * self._job_seconds))
        raise _Answer(
            RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"busy: {self._admitted} requests are already queued (limit {self.settings.max_queue})",
            ),
            (("retry-after", str(retry)),),
        )

    async def _read_body(self, headers: dict[str, str], receive: Receive, outcome: dict[str, Any]) -> bytes | None:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Answer(
                RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"body is {int(declared):,} bytes, over the {limit:,} byte limit",
                ),
                close=int(declared) > DISCARD_FACTOR * limit,
            )
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.settings.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise _Answer(
                    RequestError(
                        HTTPStatus.REQUEST_TIMEOUT,
                        f"the body did not arrive within {self.settings.timeout} s ({size:,} bytes came)",
                    ),
                    close=True,
                ) from None
            if message["type"] == "http.disconnect":
                outcome["error"] = f"client went away after {size:,} bytes of the body"
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            outcome["bytes_in"] = size
            if size > limit:  # a chunked body (or a wrong Content-Length) past the limit
                raise _Answer(
                    RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body is over the {limit:,} byte limit"),
                    close=True,
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _predict(self, content_type: str | None, body: bytes) -> tuple[int, Any]:
        assert self._model_thread is not None and self.predictor is not None, "the app has not started"
        loop = asyncio.get_running_loop()
        future = self._model_thread.submit(self._invoke, content_type, body)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=self.settings.timeout)
        except TimeoutError:
            raise _Answer(
                RequestError(HTTPStatus.GATEWAY_TIMEOUT, f"the prediction took longer than {self.settings.timeout} s"),
            ) from None
        except RequestError as error:
            raise _Answer(error) from None
        except InvalidImageError as error:
            raise _Answer(invalid_image(error)) from None
        except Exception as error:
            first = (str(error).strip().splitlines() or [""])[0][:200]
            log.debug("prediction failed", exc_info=True)
            raise _Answer(
                RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "prediction failed: see the server log"),
                detail=f"{type(error).__name__}: {first}",
            ) from None

    def _release(self) -> None:
        self._admitted -= 1

    def _invoke(self, content_type: str | None, body: bytes) -> tuple[int, Any]:
        """On the model thread: decode, predict every image, and time it for Retry-After."""
        assert self.predictor is not None
        started = time.perf_counter()
        images = parse_invocation(content_type, body)
        predictions = [self.predictor.predict(image) for image in images]
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * (time.perf_counter() - started)
        return len(images), {"predictions": predictions}

    def _log(self, method: str, path: str, status: int, outcome: dict[str, Any], started: float) -> None:
        level = (
            logging.INFO
            if status < 400
            else logging.ERROR
            if 500 <= status < 600 and status != 503
            else logging.WARNING
        )
        if path == "/ping" and status == 200:
            level = logging.DEBUG
        if log.isEnabledFor(level):
            ms = 1000 * (time.perf_counter() - started)
            log.log(level, fields(event="request", method=method, path=path, status=status, **outcome, ms=ms))


def warm_up(predictor: Predictor) -> float:
    """Run one prediction so the first request does not pay for graph setup; returns seconds."""
    import numpy as np

    started = time.perf_counter()
    size = predictor.metadata.image_size
    predictor.predict(np.zeros((size, size, 3), dtype=np.uint8))
    return time.perf_counter() - started
