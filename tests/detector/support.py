"""Helpers for the export, serve and deploy tests: images to detect in and detection comparisons."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Pixels: TF graphs reorder float sums between runs and programs; a box moves well under this.
BOX_TOLERANCE = 0.05
SCORE_TOLERANCE = 1e-4


def leaf_image(width: int, height: int, seed: int) -> np.ndarray:
    """An RGB uint8 image of random coloured ellipses on a noisy background."""
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 140, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = rng.integers(0, width * 3 // 4), rng.integers(0, height * 3 // 4)
        x1, y1 = x0 + rng.integers(8, width // 2 + 9), y0 + rng.integers(8, height // 2 + 9)
        draw.ellipse((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return np.asarray(image)


def encode(image: np.ndarray, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return buffer.getvalue()


def assert_same_detections(actual: Sequence[dict[str, Any]], expected: Sequence[dict[str, Any]]) -> None:
    """Same detections, in any order where scores tie within tolerance: class, box and score."""
    assert len(actual) == len(expected), (actual, expected)
    unmatched = list(expected)
    for detection in actual:
        for candidate in unmatched:
            if (
                detection["class_id"] == candidate["class_id"]
                and detection["class_name"] == candidate["class_name"]
                and np.allclose(detection["box"], candidate["box"], atol=BOX_TOLERANCE)
                and abs(detection["score"] - candidate["score"]) <= SCORE_TOLERANCE
            ):
                unmatched.remove(candidate)
                break
        else:
            raise AssertionError(f"{detection} has no match in {expected}")
