"""detector.evaluate: COCO conversion and metrics on hand-made boxes (no model), plots, W&B logging."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from detector.evaluate import (
    CocoMetrics,
    Detections,
    EvalResult,
    coco_metrics,
    log_to_wandb,
    plot_pr_curves,
    plot_samples,
    to_coco,
)

CLASS_NAMES = ("blue square spot", "red circle spot", "yellow triangle spot")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_truth(seed: int, images: int = 12, num_classes: int = 3) -> list[Detections]:
    """Non-overlapping boxes on a grid, every class (0 included) present."""
    rng = np.random.default_rng(seed)
    truths = []
    for index in range(images):
        count = int(rng.integers(1, 5))
        cells = rng.choice(16, size=count, replace=False)
        boxes = []
        for cell in cells:
            x0, y0 = (cell % 4) * 32 + rng.uniform(0, 8), (cell // 4) * 32 + rng.uniform(0, 8)
            boxes.append([x0, y0, x0 + rng.uniform(12, 22), y0 + rng.uniform(12, 22)])
        classes = rng.integers(0, num_classes, size=count)
        classes[0] = index % num_classes
        truths.append(Detections(boxes=np.array(boxes), classes=classes))
    return truths


def as_predictions(truths: list[Detections], *, relabel: bool = False) -> list[Detections]:
    out = []
    for truth in truths:
        classes = (truth.classes + 1) % len(CLASS_NAMES) if relabel else truth.classes
        out.append(Detections(boxes=truth.boxes.copy(), classes=classes, scores=np.ones(len(classes))))
    return out


def test_perfect_predictions_score_one_for_every_class_including_class_0() -> None:
    truths = random_truth(seed=0)
    metrics = coco_metrics(truths, as_predictions(truths), CLASS_NAMES)
    assert metrics.ap == pytest.approx(1.0)
    assert metrics.ap50 == pytest.approx(1.0)
    assert metrics.ap75 == pytest.approx(1.0)
    assert metrics.ap_per_class == pytest.approx(dict.fromkeys(CLASS_NAMES, 1.0))
    assert metrics.ap50_per_class == pytest.approx(dict.fromkeys(CLASS_NAMES, 1.0))


def test_right_boxes_with_wrong_labels_score_zero() -> None:
    truths = random_truth(seed=1)
    metrics = coco_metrics(truths, as_predictions(truths, relabel=True), CLASS_NAMES)
    assert metrics.ap50 < 0.01
    assert all(value < 0.01 for value in metrics.ap50_per_class.values())


def test_shifted_boxes_pass_iou_50_but_not_75() -> None:
    truths = [Detections(boxes=np.array([[0.0, 0.0, 100.0, 100.0]]), classes=np.array([0]))]
    # Shifted by 20 px: IoU = 80*100 / (2*10000 - 8000) = 0.67.
    shifted = [Detections(boxes=np.array([[20.0, 0.0, 120.0, 100.0]]), classes=np.array([0]), scores=np.array([0.9]))]
    metrics = coco_metrics(truths, shifted, CLASS_NAMES)
    assert metrics.ap50 == pytest.approx(1.0)
    assert metrics.ap75 == pytest.approx(0.0)


def test_class_without_ground_truth_is_nan_and_left_out_of_the_mean() -> None:
    truths = [Detections(boxes=np.array([[0.0, 0.0, 30.0, 30.0], [50.0, 50.0, 90.0, 90.0]]), classes=np.array([0, 2]))]
    metrics = coco_metrics(truths, as_predictions(truths), CLASS_NAMES)
    assert metrics.ap50 == pytest.approx(1.0)
    assert math.isnan(metrics.ap50_per_class["red circle spot"])
    assert metrics.ap50_per_class["blue square spot"] == pytest.approx(1.0)


def test_no_predictions_give_zero_not_an_error() -> None:
    truths = random_truth(seed=2, images=3)
    empty = [Detections(boxes=np.zeros((0, 4)), classes=np.zeros(0, int), scores=np.zeros(0)) for _ in truths]
    metrics = coco_metrics(truths, empty, CLASS_NAMES)
    assert (metrics.ap, metrics.ap50, metrics.ap75) == (0.0, 0.0, 0.0)


def test_pycocotools_printing_is_captured(capsys: pytest.CaptureFixture[str]) -> None:
    truths = random_truth(seed=3, images=2)
    metrics = coco_metrics(truths, as_predictions(truths), CLASS_NAMES)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Average Precision" in metrics.summary


def test_to_coco_keeps_class_0_and_converts_to_xywh() -> None:
    truth = Detections(boxes=np.array([[10.0, 20.0, 40.0, 60.0]]), classes=np.array([0]))
    predicted = Detections(boxes=np.array([[12.0, 20.0, 40.0, 60.0]]), classes=np.array([0]), scores=np.array([0.5]))
    dataset, results = to_coco([truth], [predicted], CLASS_NAMES)
    assert dataset["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10.0, 20.0, 30.0, 40.0], "area": 1200.0, "iscrowd": 0}
    ]
    assert [c["name"] for c in dataset["categories"]] == list(CLASS_NAMES)
    assert results == [{"image_id": 1, "category_id": 1, "bbox": [12.0, 20.0, 28.0, 40.0], "score": 0.5}]
    json.dumps(dataset), json.dumps(results)  # plain Python types only


@pytest.mark.parametrize(
    ("truths", "predictions", "message"),
    [
        ([Detections(np.zeros((0, 4)), np.zeros(0, int))], [], "1 ground-truth images but 0"),
        (
            [Detections(np.array([[0.0, 0, 1, 1]]), np.array([3]))],
            [Detections(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0))],
            "outside 0..2",
        ),
        ([Detections(np.zeros((0, 4)), np.zeros(0, int))], [Detections(np.zeros((0, 4)), np.zeros(0, int))], "scores"),
    ],
)
def test_to_coco_rejects_inconsistent_input(
    truths: list[Detections], predictions: list[Detections], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        to_coco(truths, predictions, CLASS_NAMES)


def test_from_padded_drops_padding_and_rows_past_the_count() -> None:
    boxes = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [-1, -1, -1, -1]], dtype=np.float32)
    truth = Detections.from_padded(boxes, np.array([2.0, 0.0, -1.0]))
    assert truth.classes.tolist() == [2, 0]
    assert truth.boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    predicted = Detections.from_padded(boxes, np.array([1.0, 1.0, 0.0]), np.array([0.9, 0.8, 0.7]), count=1)
    assert predicted.classes.tolist() == [1]
    assert predicted.scores is not None and predicted.scores.tolist() == pytest.approx([0.9])


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    truths = random_truth(seed=4, images=2)
    predictions = as_predictions(truths)
    metrics = coco_metrics(truths, predictions, CLASS_NAMES)
    curve = plot_pr_curves(metrics.precision50, metrics.recall, CLASS_NAMES, tmp_path / "pr.png")
    images = [np.full((128, 128, 3), 90.0), np.zeros((128, 128, 3))]
    samples = plot_samples(images, truths, predictions, CLASS_NAMES, tmp_path)
    assert [p.name for p in samples] == ["sample_0.png", "sample_1.png"]
    for path in (curve, *samples):
        assert path.read_bytes().startswith(PNG_SIGNATURE)


def make_result(metrics: CocoMetrics) -> EvalResult:
    return EvalResult(
        metrics=metrics, num_images=1, num_ground_truth=2, num_detections=2, pr_curve_path=None, sample_paths=()
    )


def test_result_to_dict_is_json_with_nan_as_null() -> None:
    truths = [Detections(boxes=np.array([[0.0, 0.0, 30.0, 30.0]]), classes=np.array([0]))]
    result = make_result(coco_metrics(truths, as_predictions(truths), CLASS_NAMES))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["ap50"] == pytest.approx(1.0)
    assert data["ap_per_class"]["red circle spot"] is None


def test_log_to_wandb_without_a_run_is_a_no_op() -> None:
    truths = random_truth(seed=5, images=1)
    result = make_result(coco_metrics(truths, as_predictions(truths), CLASS_NAMES))
    assert log_to_wandb(result) is False


def test_log_to_wandb_never_raises() -> None:
    class BrokenRun:
        def log(self, payload: object) -> None:
            raise ConnectionError("W&B is down")

    truths = random_truth(seed=6, images=1)
    result = make_result(coco_metrics(truths, as_predictions(truths), CLASS_NAMES))
    assert log_to_wandb(result, run=BrokenRun()) is False
