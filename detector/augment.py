"""Bounding-box-aware augmentation (training) and resizing (inference) of detection datasets.

Training and serving see objects at the same scale: serving letterboxes the whole image into
``image_size`` (long side resized to it, padded bottom/right); training resizes the long side to
``image_size`` times a jitter factor and cuts (or pads) an ``image_size`` window from that. An
earlier version jittered each image around *its own* size and cropped ``image_size`` pixels,
which at PlantDoc sizes (300-5000 px) kept a small window: 31-48% of boxes survived.

Both functions take an unbatched ``tf.data.Dataset`` of examples
``{"images": (H, W, 3) float 0-255, "bounding_boxes": {"boxes": (N, 4), "classes": (N,)}}``
with ``xyxy`` pixel boxes padded with -1 (images may differ in size), and return batches of the
same structure: square images of ``image_size`` and dense boxes padded with -1 to ``max_boxes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras_cv
import numpy as np
import tensorflow as tf

from detector.model import BOX_FORMAT

Example = dict[str, Any]


def _to_dense(batch: Example, max_boxes: int) -> Example:
    boxes = keras_cv.bounding_box.to_dense(batch["bounding_boxes"], max_boxes=max_boxes)
    return {
        "images": tf.cast(batch["images"], tf.float32),
        "bounding_boxes": {
            "boxes": tf.cast(boxes["boxes"], tf.float32),
            "classes": tf.cast(boxes["classes"], tf.float32),
        },
    }


def _as_float(example: Example) -> Example:
    return {
        "images": tf.cast(example["images"], tf.float32),
        "bounding_boxes": {
            "boxes": tf.cast(example["bounding_boxes"]["boxes"], tf.float32),
            "classes": tf.cast(example["bounding_boxes"]["classes"], tf.float32),
        },
    }


def jitter_geometry(
    width: tf.Tensor, height: tf.Tensor, *, image_size: int, scale: tf.Tensor, offset: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Where an image of ``width`` x ``height`` lands in a training example.

    The long side is resized to ``scale * image_size`` (the served letterbox when ``scale`` is
    1), then a window of ``image_size`` is cut at ``offset`` (two numbers in [0, 1): the share of
    the overhang in x and y; an image shorter than ``image_size`` in a direction is padded at the
    bottom/right instead, like the letterbox). Returns ``(resized (w, h) int32, box scale
    (sx, sy) float32, window origin (x, y) float32)``: a box maps to ``box * scale - origin``.
    Works on scalars and on vectors of images alike (the survival benchmark uses vectors).
    """
    w, h = tf.cast(width, tf.float32), tf.cast(height, tf.float32)
    ratio = tf.cast(scale, tf.float32) * image_size / tf.maximum(w, h)
    new_w = tf.maximum(tf.round(w * ratio), 1.0)
    new_h = tf.maximum(tf.round(h * ratio), 1.0)
    overhang = tf.maximum(tf.stack([new_w, new_h], axis=-1) - image_size, 0.0)
    origin = tf.floor(overhang * tf.cast(offset, tf.float32))
    resized = tf.cast(tf.stack([new_w, new_h], axis=-1), tf.int32)
    return resized, tf.stack([new_w / w, new_h / h], axis=-1), origin


def _jitter_example(
    example: Example, draws: tf.Tensor, *, image_size: int, max_boxes: int
) -> tuple[Example, tf.Tensor]:
    """Resize to the jittered scale, flip, cut or pad to ``image_size``; ``draws`` = scale, flip, ox, oy.

    Returns the example and the input's real boxes in window coordinates before clipping (what
    :func:`box_survival` compares the kept part with).
    """
    image = example["images"]
    boxes, classes = example["bounding_boxes"]["boxes"], example["bounding_boxes"]["classes"]
    shape = tf.shape(image)
    resized, box_scale, origin = jitter_geometry(
        shape[1], shape[0], image_size=image_size, scale=draws[0], offset=draws[2:4]
    )
    image = tf.image.resize(image, [resized[1], resized[0]], antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)  # antialiased resizing overshoots a little
    real = classes >= 0
    boxes = boxes * tf.tile(box_scale, [2])
    flip = draws[1] < 0.5
    new_w = tf.cast(resized[0], tf.float32)
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    boxes = tf.cond(
        flip,
        lambda: tf.stack([new_w - boxes[:, 2], boxes[:, 1], new_w - boxes[:, 0], boxes[:, 3]], axis=1),
        lambda: boxes,
    )
    x0, y0 = tf.cast(origin[0], tf.int32), tf.cast(origin[1], tf.int32)
    image = image[y0 : y0 + image_size, x0 : x0 + image_size]
    image = tf.image.pad_to_bounding_box(image, 0, 0, image_size, image_size)
    window = tf.boolean_mask(boxes - tf.tile(origin, [2]), real)
    boxes = tf.clip_by_value(boxes - tf.tile(origin, [2]), 0.0, float(image_size))
    keep = real & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, classes = tf.boolean_mask(boxes, keep)[:max_boxes], tf.boolean_mask(classes, keep)[:max_boxes]
    fill = max_boxes - tf.shape(classes)[0]
    augmented = {
        "images": tf.ensure_shape(image, [image_size, image_size, 3]),
        "bounding_boxes": {
            "boxes": tf.ensure_shape(tf.pad(boxes, [[0, fill], [0, 0]], constant_values=-1.0), [max_boxes, 4]),
            "classes": tf.ensure_shape(tf.pad(classes, [[0, fill]], constant_values=-1.0), [max_boxes]),
        },
    }
    return augmented, window


def augment_batches(
    dataset: tf.data.Dataset,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    max_boxes: int = 32,
    jitter_scale: tuple[float, float] = (0.8, 1.25),
    shuffle_buffer: int | None = 256,
) -> tf.data.Dataset:
    """Shuffle, augment and batch ``dataset`` for training.

    Each image is resized so that its long side is ``image_size`` times a factor drawn from
    ``jitter_scale`` (the served letterbox is factor 1), flipped left-right at random, then cut
    at a random place or padded at the bottom/right to ``image_size`` square, boxes following
    (clipped; those left without area dropped). Objects keep the scale they are served at, so
    most boxes survive: see :func:`jitter_geometry`. Returns a dataset of dense batches;
    ``seed`` fixes the shuffle order and the augmentation, and every epoch draws anew.
    Raises ValueError for a negative seed.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    dataset = dataset.map(_as_float)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    jittered = _jittered(dataset, image_size=image_size, seed=seed, max_boxes=max_boxes, jitter_scale=jitter_scale)
    return jittered.map(lambda example, _window: example).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _jittered(
    dataset: tf.data.Dataset, *, image_size: int, seed: int, max_boxes: int, jitter_scale: tuple[float, float]
) -> tf.data.Dataset:
    low, high = (float(v) for v in jitter_scale)
    generator = tf.random.Generator.from_seed(seed + 1)

    def draw(example: Example) -> tuple[Example, tf.Tensor]:
        uniform = generator.uniform([4])
        return example, tf.concat([[low + (high - low) * uniform[0]], uniform[1:]], axis=0)

    def apply(example: Example, draws: tf.Tensor) -> tuple[Example, tf.Tensor]:
        return _jitter_example(example, draws, image_size=image_size, max_boxes=max_boxes)

    # The random numbers are drawn in order (a sequential map); the resizing that uses them runs in
    # parallel and deterministically, so the seed still fixes every batch.
    return dataset.map(draw).map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@dataclass(frozen=True)
class Survival:
    """Boxes through augmentation: ``survived`` kept at least ``min_fraction`` of their area."""

    boxes: int
    survived: int
    images: int
    images_without_boxes: int  # images left with no box at all

    @property
    def fraction(self) -> float:
        return self.survived / self.boxes if self.boxes else 1.0


def box_survival(
    dataset: tf.data.Dataset,
    *,
    image_size: int,
    seed: int,
    max_boxes: int = 32,
    jitter_scale: tuple[float, float] = (0.8, 1.25),
    min_fraction: float = 0.5,
) -> Survival:
    """How many boxes of ``dataset`` (unbatched, as :func:`augment_batches` takes it) keep at least
    ``min_fraction`` of their area through one pass of the training augmentation.

    The images go through the same resize, flip and cut as in training; each box's area in the
    window is compared with its whole area at that scale.
    """
    boxes = survived = images = empty = 0
    jittered = _jittered(
        dataset.map(_as_float), image_size=image_size, seed=seed, max_boxes=max_boxes, jitter_scale=jitter_scale
    )
    for example, window in jittered:
        whole = window.numpy()
        kept = np.clip(whole, 0.0, float(image_size))
        area = (whole[:, 2] - whole[:, 0]) * (whole[:, 3] - whole[:, 1])
        left = np.clip(kept[:, 2] - kept[:, 0], 0, None) * np.clip(kept[:, 3] - kept[:, 1], 0, None)
        boxes += len(whole)
        survived += int((left >= min_fraction * area).sum())
        images += 1
        empty += int(not (example["bounding_boxes"]["classes"].numpy() >= 0).any())
    return Survival(boxes=boxes, survived=survived, images=images, images_without_boxes=empty)


def resize_batches(
    dataset: tf.data.Dataset, *, image_size: int, batch_size: int, max_boxes: int = 32
) -> tf.data.Dataset:
    """Batch ``dataset`` for validation or inference: resize to ``image_size`` square.

    The aspect ratio is kept and the image padded (as in training), so boxes stay comparable.
    Returns a dataset of dense batches, in the input order.
    """
    resize = inference_resizer(image_size)

    def apply(batch: Example) -> Example:
        return _to_dense(resize(batch), max_boxes)

    return dataset.map(_as_float).ragged_batch(batch_size).map(apply).prefetch(tf.data.AUTOTUNE)


def inference_resizer(image_size: int) -> keras_cv.layers.Resizing:
    """The resize applied before prediction: keep the aspect ratio, pad to ``image_size`` square."""
    return keras_cv.layers.Resizing(image_size, image_size, bounding_box_format=BOX_FORMAT, pad_to_aspect_ratio=True)


def resize_images(images: tf.Tensor, image_size: int) -> tf.Tensor:
    """Resize a batch of images (no boxes) the way ``resize_batches`` does, for serving."""
    return inference_resizer(image_size)(tf.cast(images, tf.float32))
