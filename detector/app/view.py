"""What the page shows of a prediction, as pure functions: no Streamlit, no model.

The model's detections are computed once per image; the confidence threshold and the class
filter only choose which of them to show, so moving the slider never re-runs the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from detector.export import Detection

# Box colours by class id: saturated, far from leaf greens and browns (and from each other).
PALETTE = (
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 0),
    (0, 255, 0),
    (128, 0, 255),
)
BOX_WIDTH = 3
# The slider's starting point: above the decoders' own low cut-offs, below a confident detection.
DEFAULT_THRESHOLD = 0.25
JSON_FORMAT_VERSION = 1


def colour_for(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def visible(
    detections: Sequence[Detection], *, threshold: float, classes: Iterable[str] | None = None
) -> list[Detection]:
    """The detections scoring at least ``threshold`` whose class is in ``classes`` (None: all)."""
    wanted = None if classes is None else set(classes)
    return [d for d in detections if d["score"] >= threshold and (wanted is None or d["class_name"] in wanted)]


def draw_boxes(image: np.ndarray, detections: Sequence[Detection]) -> Image.Image:
    """``image`` (HxWx3 uint8) with each detection's box and "class score" label drawn on it."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for detection in detections:
        colour = colour_for(detection["class_id"])
        x1, y1, x2, y2 = detection["box"]
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=BOX_WIDTH)
        label = f"{detection['class_name']} {detection['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label)
        height = bottom - top
        y = y1 - height - 2 if y1 - height - 2 >= 0 else y1
        draw.rectangle((x1, y, x1 + (right - left) + 4, y + height + 2), fill=colour)
        draw.text((x1 + 2, y), label, fill=(0, 0, 0))
    return canvas


def table_rows(detections: Sequence[Detection]) -> list[dict[str, Any]]:
    """One row per detection for the page's table: class, score and the box in pixels."""
    return [
        {
            "class": d["class_name"],
            "score": round(d["score"], 3),
            "x1": round(d["box"][0], 1),
            "y1": round(d["box"][1], 1),
            "x2": round(d["box"][2], 1),
            "y2": round(d["box"][3], 1),
        }
        for d in detections
    ]


def detections_json(
    images: Sequence[tuple[str, Sequence[Detection]]], *, model: str, threshold: float, classes: Sequence[str]
) -> str:
    """The download: every image's shown detections, and what chose them (model, threshold, classes)."""
    payload = {
        "format-version": JSON_FORMAT_VERSION,
        "model": model,
        "threshold": threshold,
        "classes": list(classes),
        "box_format": "xyxy pixels of the uploaded image",
        "images": [{"name": name, "detections": list(found)} for name, found in images],
    }
    return json.dumps(payload, indent=2) + "\n"
