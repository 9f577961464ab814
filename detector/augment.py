"""Bounding-box-aware augmentation (training) and resizing (inference) of detection datasets.

Both functions take an unbatched ``tf.data.Dataset`` of examples
``{"images": (H, W, 3) float 0-255, "bounding_boxes": {"boxes": (N, 4), "classes": (N,)}}``
with ``xyxy`` pixel boxes padded with -1 (images may differ in size), and return batches of the
same structure: square images of ``image_size`` and dense boxes padded with -1 to ``max_boxes``.
"""

from __future__ import annotations

from typing import Any

import keras_cv
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
    """Shuffle, batch and augment ``dataset`` for training.

    Each batch is flipped left-right at random and jitter-resized (scaled by a factor drawn from
    ``jitter_scale``, cropped at random and padded to ``image_size`` square, boxes following).
    Returns a dataset of dense batches; ``seed`` fixes the shuffle order and the augmentation.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    # KerasCV layers treat seed=0 as "no seed" and then draw from TensorFlow's global generator,
    # which keras.utils.set_random_seed leaves alone: each layer gets its own non-zero seed.
    flip = keras_cv.layers.RandomFlip(mode="horizontal", bounding_box_format=BOX_FORMAT, seed=2 * seed + 1)
    jitter = keras_cv.layers.JitteredResize(
        target_size=(image_size, image_size),
        scale_factor=jitter_scale,
        bounding_box_format=BOX_FORMAT,
        seed=2 * seed + 2,
    )
    # KerasCV 0.9.0 (its last release) seeds only the scale of JitteredResize: the crop offsets
    # come from the global generator because the seed never reaches the base layer. Seed them.
    jitter._random_generator = tf.random.Generator.from_seed(2 * seed + 2)

    def augment(batch: Example) -> Example:
        return _to_dense(jitter(flip(batch)), max_boxes)

    dataset = dataset.map(_as_float)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # Augmentation runs sequentially: parallel maps would draw random numbers in a varying order.
    return dataset.ragged_batch(batch_size).map(augment).prefetch(tf.data.AUTOTUNE)


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
