"""COCO metrics of a detector, computed with pycocotools directly, plus plots for people.

KerasCV's ``PyCOCOCallback`` counts only ``classes > 0`` as ground truth and so drops class 0
(keras-cv issues 2402, 2212); this module converts boxes itself. ``to_coco`` and
``coco_metrics`` are pure functions over NumPy arrays: the tests check them without a model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# COCO category ids start at 1 by convention; class index k is category k + 1.
CATEGORY_OFFSET = 1
# COCOeval's precision array: [iou threshold, recall threshold, class, area range, max detections].
_IOU_50, _IOU_75 = 0, 5
_AREA_ALL, _MAX_DETS_LAST = 0, -1


@dataclass(frozen=True)
class Detections:
    """One image's boxes (``xyxy`` pixels) and classes (0-based), with scores for predictions."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray | None = None

    @classmethod
    def from_padded(cls, boxes: Any, classes: Any, scores: Any = None, count: int | None = None) -> Detections:
        """Drop the padding (class < 0, or everything past ``count``) of a dense row."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(classes).reshape(-1)
        keep = classes >= 0
        if count is not None:
            keep &= np.arange(len(classes)) < count
        scored = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)[keep]
        return cls(boxes=boxes[keep], classes=classes[keep].astype(np.int64), scores=scored)


@dataclass(frozen=True)
class CocoMetrics:
    """AP (IoU 0.50:0.95), AP50 and AP75, overall and per class (NaN: no ground truth of that class)."""

    ap: float
    ap50: float
    ap75: float
    ap_per_class: dict[str, float]
    ap50_per_class: dict[str, float]
    summary: str
    # Precision at IoU 0.5 for each class (rows) at each of ``recall`` (columns); -1: undefined.
    precision50: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` measured and the files it wrote."""

    metrics: CocoMetrics
    num_images: int
    num_ground_truth: int
    num_detections: int
    pr_curve_path: Path | None
    sample_paths: tuple[Path, ...]
    # One entry per image, in dataset order, in the resized frame the model sees.
    predictions: tuple[Detections, ...] = field(default=(), repr=False)

    @property
    def ap(self) -> float:
        return self.metrics.ap

    @property
    def ap50(self) -> float:
        return self.metrics.ap50

    @property
    def ap75(self) -> float:
        return self.metrics.ap75

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None, paths become strings, the arrays are left out."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "ap": clean(self.ap),
            "ap50": clean(self.ap50),
            "ap75": clean(self.ap75),
            "ap_per_class": {k: clean(v) for k, v in self.metrics.ap_per_class.items()},
            "ap50_per_class": {k: clean(v) for k, v in self.metrics.ap50_per_class.items()},
            "num_images": self.num_images,
            "num_ground_truth": self.num_ground_truth,
            "num_detections": self.num_detections,
            "pr_curve_path": str(self.pr_curve_path) if self.pr_curve_path else None,
            "sample_paths": [str(p) for p in self.sample_paths],
        }


def to_coco(
    ground_truth: Sequence[Detections], predictions: Sequence[Detections], class_names: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Convert per-image boxes to a COCO ground-truth dataset and a COCO results list.

    Image ``i`` gets id ``i + 1``; class ``k`` gets category id ``k + 1`` (class 0 included).
    Boxes go from ``xyxy`` to COCO's ``xywh``.

    Raises:
        ValueError: the two sequences differ in length, a prediction has no scores, or a class
            index is outside ``class_names``.
    """
    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(predictions)} prediction images")
    num_classes = len(class_names)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, (truth, predicted) in enumerate(zip(ground_truth, predictions, strict=True)):
        image_id = index + 1
        images.append({"id": image_id})
        for detections in (truth, predicted):
            if len(detections.classes) and not (
                0 <= detections.classes.min() <= detections.classes.max() < num_classes
            ):
                raise ValueError(f"image {index}: class indices {detections.classes} outside 0..{num_classes - 1}")
        for box, cls in zip(_xywh(truth.boxes), truth.classes, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + CATEGORY_OFFSET,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        if predicted.scores is None:
            raise ValueError(f"image {index}: predictions need scores")
        for box, cls, score in zip(_xywh(predicted.boxes), predicted.classes, predicted.scores, strict=True):
            results.append(
                {"image_id": image_id, "category_id": int(cls) + CATEGORY_OFFSET, "bbox": box, "score": float(score)}
            )
    categories = [{"id": k + CATEGORY_OFFSET, "name": name} for k, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _xywh(boxes: np.ndarray) -> list[list[float]]:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in boxes]


def coco_metrics(
    ground_truth: Sequence[Detections], predictions: Sequence[Detections], class_names: Sequence[str]
) -> CocoMetrics:
    """Run pycocotools' COCOeval (bbox) on the boxes; its printing is captured into ``summary``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = to_coco(ground_truth, predictions, class_names)
    num_classes = len(class_names)
    recall = np.linspace(0.0, 1.0, 101)
    if not results or not dataset["annotations"]:
        # loadRes cannot take an empty list; with nothing predicted (or nothing to find) AP is 0.
        zero = {name: 0.0 if _has_class(ground_truth, k) else math.nan for k, name in enumerate(class_names)}
        return CocoMetrics(
            ap=0.0,
            ap50=0.0,
            ap75=0.0,
            ap_per_class=zero,
            ap50_per_class=dict(zero),
            summary="no detections" if not results else "no ground truth",
            precision50=np.full((num_classes, recall.size), -1.0),
            recall=recall,
        )
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    stats = evaluator.stats

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else math.nan

    ap_per_class, ap50_per_class = {}, {}
    for k, name in enumerate(class_names):
        ap_per_class[name] = mean_valid(precision[:, :, k, _AREA_ALL, _MAX_DETS_LAST])
        ap50_per_class[name] = mean_valid(precision[_IOU_50, :, k, _AREA_ALL, _MAX_DETS_LAST])
    return CocoMetrics(
        ap=_stat(stats[0]),
        ap50=_stat(stats[1]),
        ap75=_stat(stats[2]),
        ap_per_class=ap_per_class,
        ap50_per_class=ap50_per_class,
        summary=captured.getvalue(),
        precision50=np.asarray(precision[_IOU_50, :, :, _AREA_ALL, _MAX_DETS_LAST]).T.copy(),
        recall=np.asarray(evaluator.params.recThrs),
    )


def _stat(value: float) -> float:
    # COCOeval reports -1 where nothing could be measured (no ground truth at all).
    return math.nan if value < 0 else float(value)


def _has_class(ground_truth: Sequence[Detections], k: int) -> bool:
    return any((truth.classes == k).any() for truth in ground_truth)


def predict(model: Any, batches: Any) -> tuple[list[np.ndarray], list[Detections], list[Detections]]:
    """Run ``model`` over dense batches (from ``augment.resize_batches``).

    Returns the images, the ground truth and the predictions, one entry per image, in order.
    """
    images: list[np.ndarray] = []
    truths: list[Detections] = []
    predicted: list[Detections] = []
    for batch in batches:
        with warnings.catch_warnings():
            # RetinaNet's predict takes the image tensor, not the {"images": ...} dict it declares.
            warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
            output = model.predict(batch["images"], verbose=0)
        boxes = batch["bounding_boxes"]
        for i in range(int(batch["images"].shape[0])):
            images.append(np.asarray(batch["images"][i]))
            truths.append(Detections.from_padded(boxes["boxes"][i], boxes["classes"][i]))
            predicted.append(
                Detections.from_padded(
                    output["boxes"][i],
                    output["classes"][i],
                    output["confidence"][i],
                    count=int(output["num_detections"][i]),
                )
            )
    return images, truths, predicted


def evaluate(
    model: Any,
    dataset: Any,
    *,
    image_size: int,
    class_names: Sequence[str],
    out_dir: Path | None = None,
    batch_size: int = 8,
    num_samples: int = 4,
) -> EvalResult:
    """Predict on ``dataset`` (unbatched examples, as ``augment`` takes them) and score with COCO.

    Boxes are compared in the resized ``image_size`` frame the model sees. When ``out_dir`` is
    given, a precision-recall plot (``pr_curve.png``) and ``num_samples`` images with predicted
    (red) and true (green) boxes (``sample_<i>.png``) are written there.
    """
    from detector.augment import resize_batches

    batches = resize_batches(dataset, image_size=image_size, batch_size=batch_size)
    images, truths, predicted = predict(model, batches)
    metrics = coco_metrics(truths, predicted, class_names)
    pr_path: Path | None = None
    samples: tuple[Path, ...] = ()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        pr_path = plot_pr_curves(metrics.precision50, metrics.recall, class_names, out_dir / "pr_curve.png")
        samples = plot_samples(
            images[:num_samples], truths[:num_samples], predicted[:num_samples], class_names, out_dir
        )
    result = EvalResult(
        metrics=metrics,
        num_images=len(images),
        num_ground_truth=sum(len(t.classes) for t in truths),
        num_detections=sum(len(p.classes) for p in predicted),
        pr_curve_path=pr_path,
        sample_paths=samples,
        predictions=tuple(predicted),
    )
    log.info("COCO AP %.3f, AP50 %.3f, AP75 %.3f on %d images", result.ap, result.ap50, result.ap75, len(images))
    return result


def plot_pr_curves(precision50: np.ndarray, recall: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Write one precision-recall curve per class (IoU 0.5) to ``path``; returns ``path``."""
    figure = _figure((5, 4))
    axes = figure.subplots()
    for k, name in enumerate(class_names):
        curve = precision50[k]
        if (curve < 0).all():
            continue  # no ground truth of this class
        axes.plot(recall, np.clip(curve, 0, None), label=name)
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall, IoU 0.5")
    axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_samples(
    images: Sequence[np.ndarray],
    truths: Sequence[Detections],
    predicted: Sequence[Detections],
    class_names: Sequence[str],
    out_dir: Path,
    *,
    min_score: float = 0.3,
) -> tuple[Path, ...]:
    """Write each image with its true (green) and predicted (red, score >= ``min_score``) boxes.

    Returns the paths, ``out_dir/sample_<i>.png``.
    """
    paths = []
    for index, (image, truth, prediction) in enumerate(zip(images, truths, predicted, strict=True)):
        figure = _figure((4, 4))
        axes = figure.subplots()
        axes.imshow(np.clip(image, 0, 255).astype(np.uint8))
        axes.set_axis_off()
        _draw_boxes(axes, truth, class_names, colour="lime")
        confident = prediction.scores is None or prediction.scores >= min_score
        shown = Detections(
            prediction.boxes[confident], prediction.classes[confident], _pick(prediction.scores, confident)
        )
        _draw_boxes(axes, shown, class_names, colour="red")
        figure.tight_layout()
        path = Path(out_dir) / f"sample_{index}.png"
        figure.savefig(path)
        paths.append(path)
    return tuple(paths)


def _pick(values: np.ndarray | None, mask: Any) -> np.ndarray | None:
    return None if values is None else values[mask]


def _draw_boxes(axes: Any, detections: Detections, class_names: Sequence[str], *, colour: str) -> None:
    from matplotlib.patches import Rectangle

    for i, (x0, y0, x1, y1) in enumerate(detections.boxes):
        axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))
        label = class_names[int(detections.classes[i])]
        if detections.scores is not None:
            label = f"{label} {detections.scores[i]:.2f}"
        axes.text(x0, y0, label, color="white", fontsize=7, backgroundcolor=colour, verticalalignment="bottom")


def _figure(size: tuple[float, float]) -> Any:
    # A bare Figure, not pyplot: no GUI backend, no global state, safe on headless machines.
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100)


def log_to_wandb(result: EvalResult, *, prefix: str = "eval", run: Any = None) -> bool:
    """Log the metrics and plots to the active W&B run (or ``run``); True when logged.

    Never raises: evaluation results matter more than their upload.
    """
    try:
        import wandb

        run = run or wandb.run
        if run is None:
            return False
        payload: dict[str, Any] = {
            f"{prefix}/ap": result.ap,
            f"{prefix}/ap50": result.ap50,
            f"{prefix}/ap75": result.ap75,
        }
        for name, value in result.metrics.ap_per_class.items():
            payload[f"{prefix}/ap/{name}"] = value
        for name, value in result.metrics.ap50_per_class.items():
            payload[f"{prefix}/ap50/{name}"] = value
        if result.pr_curve_path:
            payload[f"{prefix}/pr_curve"] = wandb.Image(str(result.pr_curve_path))
        if result.sample_paths:
            payload[f"{prefix}/samples"] = [wandb.Image(str(p)) for p in result.sample_paths]
        run.log(payload)
        return True
    except Exception as error:  # W&B down or misconfigured: keep the run going
        log.warning("could not log evaluation to W&B: %s", error)
        return False
