"""From annotations to what KerasCV's RetinaNet trains on: class map, split, ``tf.data``.

- :func:`load_plantdoc` (and the other readers of :mod:`detector.annotations`, re-exported
  here) give :class:`AnnotatedImage` records and a :class:`LoadReport`.
- :class:`ClassMap`: sorted class names (surrounding whitespace stripped) -> ids 0..n-1, saved
  as versioned JSON next to a model.
- :func:`split_records`: train/validation by a SHA-256 of seed + image file name, so the split
  is the same on every run and platform and does not depend on listing order or random state.
- :func:`make_dataset`: ``{"images", "bounding_boxes": {"boxes", "classes"}}`` in ``xyxy``
  pixels, dense, padded with -1. TensorFlow is imported there only, so reading annotations stays
  fast and works without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector import config
from detector.annotations import (
    AnnotatedImage,
    Box,
    LoadReport,
    Skipped,
    load_plantdoc,
    read_coco,
    read_labels_csv,
    read_voc_dir,
)
from detector.errors import AnnotationError, EmptyDatasetError, UnknownClassError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "AnnotatedImage",
    "Box",
    "ClassMap",
    "LoadReport",
    "Skipped",
    "build_class_map",
    "encode_boxes",
    "letterbox_size",
    "load_class_map",
    "load_plantdoc",
    "make_dataset",
    "read_coco",
    "read_labels_csv",
    "read_voc_dir",
    "save_class_map",
    "split_records",
]

log = logging.getLogger(__name__)

CLASS_MAP_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClassMap:
    """Class names in id order: ids are positions in the sorted, whitespace-stripped names."""

    names: tuple[str, ...]

    @classmethod
    def from_records(cls, *splits: Iterable[AnnotatedImage]) -> ClassMap:
        return cls(tuple(sorted({box.label.strip() for records in splits for r in records for box in r.boxes})))

    def __len__(self) -> int:
        return len(self.names)

    def id_of(self, label: str) -> int:
        """The id of ``label``. Raises UnknownClassError."""
        try:
            return self._ids[label.strip()]
        except KeyError:
            raise UnknownClassError(label, self.names) from None

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.names)}

    def to_json(self) -> str:
        return json.dumps({"format-version": CLASS_MAP_FORMAT_VERSION, "classes": list(self.names)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = "class map") -> ClassMap:
        """Parse what :meth:`to_json` wrote. Raises AnnotationError for any other content."""
        try:
            data = json.loads(text)
            version = data["format-version"]
            names = data["classes"]
        except (ValueError, KeyError, TypeError) as error:
            raise AnnotationError(where, f"not a class map ({error})") from None
        if version != CLASS_MAP_FORMAT_VERSION:
            raise AnnotationError(where, f"class map format-version {version!r}; this detector reads version 1")
        if not isinstance(names, list) or names != sorted(set(map(str, names))):
            raise AnnotationError(where, "classes must be a sorted list of distinct names")
        return cls(tuple(names))


def save_class_map(class_map: ClassMap, path: Path) -> None:
    path.write_text(class_map.to_json(), encoding="utf-8")


def load_class_map(path: Path) -> ClassMap:
    """Read a class map written by :func:`save_class_map`. Raises AnnotationError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AnnotationError(str(path), f"cannot read the class map ({error.strerror or error})") from None
    return ClassMap.from_json(text, where=str(path))


def build_class_map(*splits: Iterable[AnnotatedImage]) -> ClassMap:
    """The class map of every box in ``splits`` (pass train and test to cover both)."""
    return ClassMap.from_records(*splits)


def _split_key(seed: int, name: str) -> str:
    # Changing this recipe changes every train/validation split: keep it.
    return hashlib.sha256(f"{seed}\0{name}".encode()).hexdigest()


def split_records(
    records: Sequence[AnnotatedImage], *, val_fraction: float = config.VAL_FRACTION, seed: int = config.SPLIT_SEED
) -> tuple[list[AnnotatedImage], list[AnnotatedImage]]:
    """Split into (train, validation), both in input order.

    Image file names are ordered by SHA-256 of ``seed`` + name and the first ones go to
    validation until ``round(val_fraction * len(records))`` images (at least one when there are
    two or more) are there; images sharing a name stay together. Raises ValueError for a
    fraction outside [0, 1).
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    target = round(val_fraction * len(records))
    if val_fraction > 0 and len(records) >= 2:
        target = max(target, 1)
    counts: dict[str, int] = {}
    for record in records:
        counts[record.name] = counts.get(record.name, 0) + 1
    chosen: set[str] = set()
    taken = 0
    for name in sorted(counts, key=lambda n: _split_key(seed, n)):
        if taken >= target:
            break
        chosen.add(name)
        taken += counts[name]
    return [r for r in records if r.name not in chosen], [r for r in records if r.name in chosen]


def letterbox_size(width: int, height: int, image_size: int) -> tuple[int, int]:
    """The (width, height) an image is resized to before padding to ``image_size`` square."""
    scale = image_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_boxes(
    record: AnnotatedImage, class_map: ClassMap, *, max_boxes: int, image_size: int | None = None
) -> tuple[list[list[float]], list[float]]:
    """The record's boxes and class ids, padded with -1 to ``max_boxes`` (the largest kept).

    With ``image_size`` the boxes are scaled like the image in :func:`make_dataset`.
    """
    boxes = list(record.boxes)
    if len(boxes) > max_boxes:  # keep the largest, in annotation order
        largest = sorted(range(len(boxes)), key=lambda i: -boxes[i].area)[:max_boxes]
        boxes = [boxes[i] for i in sorted(largest)]
    sx = sy = 1.0
    if image_size is not None:
        new_w, new_h = letterbox_size(record.width, record.height, image_size)
        sx, sy = new_w / record.width, new_h / record.height
    pad = float(config.PAD_VALUE)
    coords = [[b.xmin * sx, b.ymin * sy, b.xmax * sx, b.ymax * sy] for b in boxes]
    classes = [float(class_map.id_of(b.label)) for b in boxes]
    fill = max_boxes - len(boxes)
    return coords + [[pad] * 4] * fill, classes + [pad] * fill


def make_dataset(
    records: Sequence[AnnotatedImage],
    class_map: ClassMap,
    *,
    image_size: int | None = None,
    max_boxes: int = config.MAX_BOXES,
    batch_size: int | None = None,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``{"images", "bounding_boxes": {"boxes", "classes"}}``.

    Images are float32 RGB in 0-255 (grey and RGBA files become RGB; EXIF rotation is not
    applied, matching the annotations). Without ``image_size`` each example keeps its image's
    size (what ``detector.augment`` takes); with it the image is resized, aspect kept, so its
    longer side is ``image_size`` and zero-padded at the bottom and right to a square, boxes
    scaled alike. Boxes are ``xyxy`` pixels ``(max_boxes, 4)`` and classes ``(max_boxes,)``
    float32, padded with -1; an image with more boxes keeps the largest. ``batch_size`` batches
    (images must then be square: give ``image_size``); ``shuffle_seed`` shuffles every epoch.
    Raises EmptyDatasetError for no records, UnknownClassError for a label not in ``class_map``,
    ValueError for ``batch_size`` without ``image_size``.
    """
    import numpy as np
    import tensorflow as tf

    if not records:
        raise EmptyDatasetError("no images to build a dataset from")
    if batch_size is not None and image_size is None:
        raise ValueError("batch_size needs image_size: images of different sizes cannot be batched densely")
    over = sum(len(r.boxes) > max_boxes for r in records)
    if over:
        log.warning("%d image(s) have more than %d boxes: the largest %d are kept", over, max_boxes, max_boxes)
    encoded = [encode_boxes(r, class_map, max_boxes=max_boxes, image_size=image_size) for r in records]
    sizes = [letterbox_size(r.width, r.height, image_size) if image_size else (0, 0) for r in records]
    dataset = tf.data.Dataset.from_tensor_slices(
        (
            [str(r.image) for r in records],
            np.asarray([e[0] for e in encoded], dtype=np.float32).reshape(len(records), max_boxes, 4),
            np.asarray([e[1] for e in encoded], dtype=np.float32).reshape(len(records), max_boxes),
            np.asarray(sizes, dtype=np.int32),
        )
    )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(records), seed=shuffle_seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, size: tf.Tensor) -> dict[str, Any]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.cast(image, tf.float32)
        if image_size is not None:
            image = tf.image.resize(image, [size[1], size[0]], antialias=True)
            image = tf.image.pad_to_bounding_box(image, 0, 0, image_size, image_size)
            image = tf.clip_by_value(image, 0.0, 255.0)  # antialiased resizing overshoots a little
            image = tf.ensure_shape(image, [image_size, image_size, 3])
        return {"images": image, "bounding_boxes": {"boxes": boxes, "classes": classes}}

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
