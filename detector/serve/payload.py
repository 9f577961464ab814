"""What an ``/invocations`` body holds: images, decoded as training decodes them, within limits.

Pure functions over bytes (no HTTP): :func:`parse_invocation` turns a body and its content type
into HxWx3 uint8 arrays, :func:`accepts_json` reads an ``Accept`` header. Every refusal is a
:class:`~detector.errors.RequestError` carrying the HTTP status it is answered with, and a
message that names the limit or the expected form, never a decoder's internals.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from http import HTTPStatus
from typing import Any

import numpy as np

from detector import config
from detector.errors import InvalidImageError, RequestError

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "application/x-image"})
JSON_TYPE = "application/json"
# JSON string literals, escapes included: their brackets do not nest anything.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _bad(message: str) -> RequestError:
    return RequestError(HTTPStatus.BAD_REQUEST, message)


def _image_header(data: bytes, what: str) -> tuple[str, int, int]:
    """(format, width, height) from the header, before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as header:
            return str(header.format), *header.size
    except Image.DecompressionBombError:
        # Pillow refuses headers over twice its own pixel limit before we see the size.
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"{what} claims more pixels than the {config.MAX_IMAGE_PIXELS:,} pixel limit",
            fix="send an image of at most 40 megapixels (the model sees it resized to image_size anyway)",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise _bad(f"{what} is not a JPEG or PNG image") from None


def decode_image_bytes(data: bytes, *, what: str = "body", pixel_budget: int | None = None) -> np.ndarray:
    """A JPEG or PNG as an HxWx3 uint8 RGB array, decoded as training decodes (tf.io.decode_image).

    Grey and RGBA images become RGB. Raises RequestError (400) for empty bytes, other formats,
    corrupt files, and images over ``config.MAX_IMAGE_PIXELS`` (or over ``pixel_budget``).
    """
    if not data:
        raise _bad(f"{what} is empty: send the bytes of a JPEG or PNG image")
    kind, width, height = _image_header(data, what)
    if kind not in ("JPEG", "PNG"):
        raise _bad(f"{what} is a {kind} image; send JPEG or PNG")
    limit = config.MAX_IMAGE_PIXELS if pixel_budget is None else min(pixel_budget, config.MAX_IMAGE_PIXELS)
    if width * height > limit:
        over = (
            f"over the {limit:,} pixel limit"
            if limit == config.MAX_IMAGE_PIXELS
            else f"over the {limit:,} left of the request's {config.MAX_REQUEST_PIXELS:,} pixel limit"
        )
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"{what} is {width}x{height} pixels, {over}",
            fix="send smaller images (the model sees each resized to image_size anyway)",
        )
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        # TensorFlow's message names its kernels and graph nodes: nothing a client can act on.
        raise _bad(f"{what} is a damaged or truncated {kind} image: it cannot be decoded") from None
    return np.asarray(image.numpy(), dtype=np.uint8)


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (valid JSON or not), without recursion."""
    structure = np.frombuffer(_JSON_STRING.sub(b"", body), dtype=np.uint8)
    if structure.size == 0:
        return 0
    steps = np.zeros(structure.shape, dtype=np.int64)
    steps[(structure == ord("[")) | (structure == ord("{"))] = 1
    steps[(structure == ord("]")) | (structure == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def _pixels_instance(instance: list[Any], what: str) -> np.ndarray:
    try:
        array = np.asarray(instance)
    except ValueError:
        raise _bad(f"{what}: rows of different lengths: not a height x width x 3 image") from None
    if array.size == 0:
        raise _bad(f"{what}: empty image (no pixels)")
    if array.ndim != 3 or array.shape[2] != 3:
        raise _bad(f"{what}: expected height x width x 3, got shape {list(array.shape)}")
    if array.dtype.kind not in "iu":
        raise _bad(f"{what}: pixels must be integers 0-255, got {array.dtype.name} values")
    if array.min() < 0 or array.max() > 255:
        raise _bad(f"{what}: pixels must be 0-255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def _instance_image(instance: Any, index: int, pixel_budget: int) -> np.ndarray:
    what = f"instance {index}"
    if isinstance(instance, dict):
        if set(instance) != {"b64"} or not isinstance(instance["b64"], str):
            raise _bad(f'{what}: an object instance must be {{"b64": "<base64 JPEG or PNG>"}}')
        try:
            data = base64.b64decode(instance["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise _bad(f"{what}: b64 is not valid base64 ({error})") from None
        return decode_image_bytes(data, what=what, pixel_budget=pixel_budget)
    if not isinstance(instance, list):
        raise _bad(f"{what}: expected a height x width x 3 list of 0-255 ints or {{'b64': ...}}")
    return _pixels_instance(instance, what)


def parse_invocation(content_type: str | None, body: bytes) -> list[np.ndarray]:
    """The images of an /invocations request, as HxWx3 uint8 arrays.

    Raises RequestError: 415 for another content type, 400 for a body that is not an image or
    TF-Serving JSON of images, nested deeper than ``config.MAX_JSON_DEPTH``, or whose images
    hold more than ``config.MAX_REQUEST_PIXELS`` pixels together.
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
        raise _bad('body is empty: send {"instances": [...]}')
    depth = json_depth(body)
    if depth > config.MAX_JSON_DEPTH:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"JSON nests {depth} levels deep, over the limit of {config.MAX_JSON_DEPTH}",
            fix='send {"instances": [...]} whose instances are height x width x 3 lists or {"b64": ...}',
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise _bad(f"body is not JSON ({error})") from None
    instances = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(instances, list):
        raise _bad('expected a JSON object {"instances": [...]}')
    if not instances:
        raise _bad('"instances" is empty: send at least one image')
    images: list[np.ndarray] = []
    budget = config.MAX_REQUEST_PIXELS
    for index, instance in enumerate(instances):
        image = _instance_image(instance, index, budget)
        budget -= image.shape[0] * image.shape[1]
        if budget < 0:
            raise _bad(f"the instances hold more than {config.MAX_REQUEST_PIXELS:,} pixels together")
        images.append(image)
    return images


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def accepts_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header admits ``application/json`` (no header admits anything)."""
    if accept is None or not accept.strip():
        return True
    ranges = _media_ranges(accept)
    for exact in (JSON_TYPE, "application/*", "*/*"):
        matching = [q for media, q in ranges if media == exact]
        if matching:  # the most specific range decides (RFC 9110 section 12.5.1)
            return max(matching) > 0
    return False


def invalid_image(error: InvalidImageError) -> RequestError:
    """A predictor's refusal of an image, as the 400 the client gets."""
    return RequestError(HTTPStatus.BAD_REQUEST, error.headline, fix=error.fix)
