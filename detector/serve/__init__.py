"""An HTTP server for an exported detector that follows SageMaker's container contract.

``python -m detector serve`` (what ``docker run IMAGE serve`` runs) loads the export from
``--model-dir`` (default ``/opt/ml/model``) and listens on ``--port``, else
``$SAGEMAKER_BIND_TO_PORT``, else 8080, HTTP/1.1 with keep-alive:

- ``GET /ping``: 200 ``{"status": "ok"}`` once a worker has loaded the model.
- ``POST /invocations``: ``image/jpeg``, ``image/png`` (or ``application/x-image``) bytes, or
  TF-Serving JSON ``{"instances": [...]}`` whose instances are HxWx3 lists of 0-255 ints or
  ``{"b64": "<base64 JPEG/PNG>"}``. Answers 200 ``{"predictions": [[detection, ...], ...]}``,
  one list per image, each detection ``{"class_name", "class_id", "box": [x1, y1, x2, y2]
  pixels of that image, "score"}``.
- Errors are JSON ``{"error": ..., "fix": ...}``: 400 not an image (or JSON of images), too
  many pixels or too deep; 404/405 other paths and methods; 406 an ``Accept`` without JSON;
  408 a body slower than the timeout; 413 over 6 MiB (InvokeEndpoint's limit); 415 another
  content type; 503 + ``Retry-After`` when the worker's queue is full; 504 a prediction
  slower than the timeout; 500 a failure of ours (details only in the log).
- SIGTERM (or SIGINT) stops accepting connections, lets in-flight requests finish (up to 25 s:
  SageMaker kills the container 30 s after SIGTERM), and the command exits 0.

Modules: :mod:`~detector.serve.payload` (bodies to images, limits), :mod:`~detector.serve.app`
(the ASGI app: routes, queue, logs), :mod:`~detector.serve.settings` (environment variables),
:mod:`~detector.serve.server` (uvicorn, workers, signals).
"""

from __future__ import annotations

from detector.serve.payload import accepts_json, decode_image_bytes, json_depth, parse_invocation
from detector.serve.server import run_server
from detector.serve.settings import ServeSettings, resolve_log_level, resolve_port

__all__ = [
    "ServeSettings",
    "accepts_json",
    "decode_image_bytes",
    "json_depth",
    "parse_invocation",
    "resolve_log_level",
    "resolve_port",
    "run_server",
]
