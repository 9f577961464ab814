"""Where the page's detections come from: an export loaded in this process, or an endpoint URL.

Both take the uploaded file's bytes, checked by :func:`read_upload` first (the same decoding the
``/invocations`` server uses, so a page and a server never disagree about an image), and return
the server's detection dicts: ``{"class_name", "class_id", "box": [x1, y1, x2, y2], "score"}``.
An endpoint is spoken to exactly as SageMaker's InvokeEndpoint would: ``POST /invocations`` with
the image bytes and their ``Content-Type``, answered by ``{"predictions": [[...]]}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from detector import config
from detector.errors import EndpointError, InvalidImageError, RequestError
from detector.export import Detection, Predictor, load_exported
from detector.serve import decode_image_bytes

ENDPOINT_TIMEOUT = 60.0  # SageMaker's own limit for an invocation


@dataclass(frozen=True)
class Prediction:
    """One image's detections (all the model returned, best first) and how long they took."""

    detections: list[Detection]
    seconds: float


class Source(Protocol):
    """Something that detects: ``key`` names it for caches, ``label`` for people."""

    key: str
    label: str

    def predict(self, image: np.ndarray, data: bytes) -> Prediction: ...


def read_upload(name: str, data: bytes, *, max_bytes: int = config.MAX_REQUEST_BYTES) -> np.ndarray:
    """An uploaded file as an HxWx3 uint8 image. Raises InvalidImageError (with a fix) otherwise."""
    if len(data) > max_bytes:
        raise InvalidImageError(
            f"{name} is {len(data) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB an endpoint accepts",
            fix="upload a smaller image (resize or re-compress it; the model sees at most a few hundred pixels)",
        )
    try:
        return decode_image_bytes(data, what=name)
    except (InvalidImageError, RequestError) as error:
        # The server's own refusals (format, pixel limit): their fix when they carry one.
        raise InvalidImageError(error.headline, fix=error.fix or "upload a JPEG or PNG photo") from None


def content_type(data: bytes) -> str:
    return "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"


def keep_tensorflow_warm() -> None:
    """Stop Streamlit from clearing Keras' session after every script run.

    Streamlit does that for apps that build a model on each run (``_clean_problem_modules``, run
    after every rerun whenever ``keras`` is imported, as TensorFlow does). Here it empties
    TensorFlow's kernel cache, so the first prediction after each interaction sets up its kernels
    again: 0.5-1.1 s instead of 15 ms for the `test` model on this machine. This page loads its
    models once (``st.cache_resource``) and never rebuilds them: there is nothing to clear.
    ``tests/detector/app/test_sources.py`` checks that the hook is still where Streamlit calls it.
    """
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = _nothing_to_clean


def _nothing_to_clean() -> None:
    pass


class LocalModel:
    """An export loaded in this process (:class:`detector.export.Predictor`)."""

    def __init__(self, predictor: Predictor, *, key: str, label: str) -> None:
        self.predictor = predictor
        self.key = key
        self.label = label

    @classmethod
    def load(cls, export_dir: Path, *, label: str) -> LocalModel:
        """Raises ExportFormatError when ``export_dir`` is not an export. The model answers once
        (a blank image) before this returns: TensorFlow sets up its kernels on the first call
        (0.7 s here), which the first upload would pay otherwise."""
        model = cls(load_exported(Path(export_dir)), key=f"export:{Path(export_dir).resolve()}", label=label)
        size = model.predictor.metadata.image_size
        model.predictor.predict(np.zeros((size, size, 3), np.uint8))
        return model

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.predictor.class_names

    @property
    def model_threshold(self) -> float | None:
        value = self.predictor.metadata.decoder.get("confidence_threshold")
        return float(value) if value is not None else None

    def predict(self, image: np.ndarray, data: bytes) -> Prediction:
        started = time.perf_counter()
        detections = self.predictor.predict(image)
        return Prediction(detections, time.perf_counter() - started)


def invocations_url(url: str) -> str:
    """``url`` as the endpoint's /invocations URL. Raises EndpointError for a URL that is not http(s)."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointError(
            f"{url!r} is not an http(s) URL",
            fix="give the server's URL, e.g. http://127.0.0.1:8080 (what `python -m detector serve` prints)",
        )
    return text if text.endswith("/invocations") else f"{text}/invocations"


class Endpoint:
    """A server speaking SageMaker's ``/invocations`` contract (``python -m detector serve``)."""

    def __init__(self, url: str, *, timeout: float = ENDPOINT_TIMEOUT) -> None:
        self.url = invocations_url(url)
        self.key = f"endpoint:{self.url}"
        self.label = f"endpoint {self.url}"
        self.timeout = timeout
        self.class_names: tuple[str, ...] = ()  # an endpoint does not say; the page learns them from answers
        self.model_threshold: float | None = None

    def predict(self, image: np.ndarray, data: bytes) -> Prediction:
        """Raises EndpointError when it cannot be reached, refuses the image or answers off-contract."""
        import requests

        started = time.perf_counter()
        try:
            response = requests.post(
                self.url, data=data, headers={"Content-Type": content_type(data)}, timeout=self.timeout
            )
        except requests.RequestException as error:
            raise EndpointError(
                f"cannot reach the endpoint {self.url} ({_reason(error)})",
                fix="start one with `python -m detector serve --model-dir runs/DetectorFlow/<run id>/export/model "
                "--port 8080`, or correct the URL",
            ) from None
        seconds = time.perf_counter() - started
        payload = _json(response)
        if response.status_code != 200:
            message = payload.get("error") if isinstance(payload, dict) else None
            fix = payload.get("fix") if isinstance(payload, dict) else None
            raise EndpointError(
                f"the endpoint answered {response.status_code}: {message or response.reason}",
                fix=fix or "check that the URL is a detector endpoint (GET /ping answers 200)",
            )
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not (isinstance(predictions, list) and len(predictions) == 1 and isinstance(predictions[0], list)):
            raise EndpointError(
                f"{self.url} did not answer with SageMaker's {{'predictions': [[...]]}}",
                fix="point at a detector endpoint (`python -m detector serve`, `docker run IMAGE serve`)",
            )
        return Prediction([_detection(item) for item in predictions[0]], seconds)


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detection(item: Any) -> Detection:
    try:
        box = [float(v) for v in item["box"]]
        return Detection(
            class_name=str(item["class_name"]), class_id=int(item["class_id"]), box=box, score=float(item["score"])
        )
    except (KeyError, TypeError, ValueError):
        raise EndpointError(
            f"the endpoint returned a detection without class_name, class_id, box and score: {item!r}"[:300],
            fix="point at a detector endpoint (`python -m detector serve`)",
        ) from None


def _reason(error: Exception) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker
    return type(error).__name__


SAMPLE_NAME = "sample-leaf.jpg"


def sample_upload() -> tuple[str, bytes]:
    """The bundled sample photo: drawn as image 0 of the sample dataset `make run` trains on."""
    import io

    from detector.sample import JPEG_QUALITY, render_image

    image, _ = render_image(seed=config.SAMPLE_SEED, index=0, size=config.SAMPLE_SIZE)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return SAMPLE_NAME, buffer.getvalue()
