"""Decode check: every image is fully decoded once before training, so a broken file is named
and dropped at load time instead of aborting ``model.fit`` deep in TensorFlow
(``jpeg::Uncompress failed``) without a file name.

Decoding a 2,500-image split takes a while, so results are cached by absolute path, file size
and modification time (``decoded.json`` in ``config.cache_dir()``, JSON, written atomically): the second load reads
headers only for files that changed. Pillow decodes; only formats that TensorFlow's
``decode_image`` also reads (JPEG, PNG, BMP, GIF) pass, whatever the file's suffix says.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from detector import config
from detector.errors import UnreadableImageError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
# What tf.io.decode_image reads (it sniffs the bytes, so a PNG named .jpg is fine).
TF_FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF", "MPO"})


@dataclass(frozen=True)
class Decoded:
    width: int
    height: int
    problem: str | None  # why the image cannot be used; None when it decodes


def decode_image_file(path: Path) -> Decoded:
    """Fully decode ``path`` with Pillow. Returns its size, or the problem that stops it."""
    try:
        with Image.open(path) as image:
            size = image.size
            kind = image.format or "unknown"
            if kind not in TF_FORMATS:
                return Decoded(*size, f"{kind} data, which TensorFlow does not decode")
            image.load()  # raises on truncated or corrupt data (LOAD_TRUNCATED_IMAGES stays off)
            return Decoded(*size, None)
    except UnidentifiedImageError:
        return Decoded(0, 0, f"not an image ({_sniff(path)})")
    except (OSError, SyntaxError, ValueError) as error:  # Pillow raises all three for bad data
        return Decoded(0, 0, f"does not decode: {error or type(error).__name__}")


def _sniff(path: Path) -> str:
    try:
        head = path.read_bytes()[:64].lstrip().lower()
    except OSError as error:
        return error.strerror or str(error)
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    return f"starts with {head[:8]!r}" if head else "empty file"


class DecodeCache:
    """Decode results keyed by absolute path, size and mtime; ``save`` writes them atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.hits = 0
        self.decoded = 0
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("format-version") == CACHE_FORMAT and isinstance(data.get("images"), dict):
                    self._entries = data["images"]
            except (OSError, ValueError, AttributeError):
                log.warning("%s is not a decode cache: images are decoded again", path)

    def check(self, path: Path) -> tuple[int, int]:
        """The size of a fully decodable image. Raises UnreadableImageError naming ``path``."""
        try:
            stat = path.stat()
        except OSError as error:
            raise UnreadableImageError(path, error.strerror or str(error)) from None
        key = str(path.resolve())
        entry = self._entries.get(key)
        if entry is not None and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            self.hits += 1
            width, height, problem = entry[2], entry[3], entry[4]
        else:
            self.decoded += 1
            result = decode_image_file(path)
            width, height, problem = result.width, result.height, result.problem
            self._entries[key] = [stat.st_size, stat.st_mtime_ns, width, height, problem]
            self._dirty = True
        if problem is not None:
            raise UnreadableImageError(path, str(problem))
        return int(width), int(height)  # type: ignore[call-overload]

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".decode-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"format-version": CACHE_FORMAT, "images": self._entries}, out)
            os.replace(temp, self.path)
            self._dirty = False
        except OSError as error:  # a read-only cache folder slows the next load, nothing more
            log.warning("could not write the decode cache %s (%s)", self.path, error.strerror or error)


def default_cache() -> DecodeCache:
    return DecodeCache(config.cache_dir() / "decoded.json")
