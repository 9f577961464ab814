"""What the page shows of detections, without a browser or a model: filtering, boxes, JSON."""

from __future__ import annotations

import json

import numpy as np

from detector.app.view import BOX_WIDTH, colour_for, detections_json, draw_boxes, table_rows, visible
from detector.export import Detection

DETECTIONS = [
    Detection(class_name="rust", class_id=2, box=[10.0, 12.0, 60.0, 50.0], score=0.9),
    Detection(class_name="blight", class_id=0, box=[70.0, 20.0, 110.0, 70.0], score=0.6),
    Detection(class_name="rust", class_id=2, box=[5.0, 60.0, 40.0, 95.0], score=0.3),
]


def test_threshold_and_class_filter_choose_from_the_detections() -> None:
    assert visible(DETECTIONS, threshold=0.0) == DETECTIONS
    assert visible(DETECTIONS, threshold=0.6) == DETECTIONS[:2]  # at least the threshold
    assert visible(DETECTIONS, threshold=0.0, classes=["rust"]) == [DETECTIONS[0], DETECTIONS[2]]
    assert visible(DETECTIONS, threshold=0.5, classes=[]) == []


def test_boxes_are_drawn_in_their_class_colour_on_a_copy() -> None:
    image = np.full((100, 120, 3), 100, dtype=np.uint8)
    drawn = np.asarray(draw_boxes(image, DETECTIONS[:2]))
    assert (image == 100).all(), "the input must not be drawn on"
    assert tuple(drawn[30, 10]) == colour_for(2)  # the left edge of the rust box
    assert tuple(drawn[45, 70 + BOX_WIDTH - 1]) == colour_for(0)  # the blight box's left edge
    assert tuple(drawn[90, 100]) == (100, 100, 100)  # outside every box
    assert colour_for(0) != colour_for(2)


def test_table_and_json_hold_what_is_shown() -> None:
    rows = table_rows(DETECTIONS[:1])
    assert rows == [{"class": "rust", "score": 0.9, "x1": 10.0, "y1": 12.0, "x2": 60.0, "y2": 50.0}]
    payload = json.loads(
        detections_json([("a.png", DETECTIONS[:2]), ("b.jpg", [])], model="run 7", threshold=0.5, classes=["rust"])
    )
    assert payload["format-version"] == 1 and payload["model"] == "run 7" and payload["threshold"] == 0.5
    assert [image["name"] for image in payload["images"]] == ["a.png", "b.jpg"]
    assert payload["images"][0]["detections"][1]["class_name"] == "blight"
