"""detector.augment at PlantDoc's geometry: boxes survive the training augmentation.

The geometry is the real train split's (``data/plantdoc/train_labels.csv``, byte-identical to
``../shared/data/plantdoc/train_labels.csv``): every image at the size the CSV states, every box
where it states. The images are blank stand-ins (``plantdoc_root``); only their size matters. The test takes
every 8th image (~290, the geometry's spread is kept) to stay under a minute on two cores;
``python -m bench --only survival`` measures the whole split, old augmentation against new.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from detector.augment import augment_batches, box_survival, jitter_geometry
from detector.data import build_class_map, make_dataset, read_labels_csv
from detector.model import CONFIGS, get_config

MIN_SURVIVAL = 0.95


@pytest.fixture(scope="module")
def train_geometry(plantdoc_root: Path) -> tuple[list, object]:
    records, report = read_labels_csv(plantdoc_root / "train_labels.csv", plantdoc_root / "TRAIN")
    assert report.images > 2300
    return records[::8], build_class_map(records)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_boxes_survive_augmentation_at_plantdoc_geometry(train_geometry: tuple[list, object], name: str) -> None:
    records, class_map = train_geometry
    config = get_config(name)
    survival = box_survival(
        make_dataset(records, class_map, max_boxes=config.max_boxes),
        image_size=config.image_size,
        seed=0,
        max_boxes=config.max_boxes,
        jitter_scale=config.jitter_scale,
    )
    assert survival.images == len(records)
    assert survival.boxes >= 900
    assert survival.fraction >= MIN_SURVIVAL, survival
    assert survival.images_without_boxes <= 0.01 * survival.images, survival


def test_scale_one_is_the_served_letterbox() -> None:
    # 2592x1944 at 512: the letterbox is 512x384, nothing is cut.
    resized, scale, origin = jitter_geometry(2592, 1944, image_size=512, scale=1.0, offset=[0.7, 0.7])
    assert resized.numpy().tolist() == [512, 384]
    np.testing.assert_allclose(scale.numpy(), [512 / 2592, 384 / 1944])
    assert origin.numpy().tolist() == [0.0, 0.0]
    # Zoomed in by 1.25: 640x480, a 512 window cut at 70% of the 128 px overhang in x.
    resized, _, origin = jitter_geometry(2592, 1944, image_size=512, scale=1.25, offset=[0.7, 0.7])
    assert resized.numpy().tolist() == [640, 480]
    assert origin.numpy().tolist() == [89.0, 0.0]


def test_augmented_boxes_follow_the_pixels(tmp_path: Path) -> None:
    # A white rectangle on black, at PlantDoc-like size: after augmentation the box still frames it.
    from PIL import Image, ImageDraw

    from detector.data import AnnotatedImage, Box, ClassMap

    image = Image.new("RGB", (1600, 1200))
    ImageDraw.Draw(image).rectangle((1000, 200, 1399, 699), fill=(255, 255, 255))
    path = tmp_path / "leaf.png"
    image.save(path)
    record = AnnotatedImage(path, 1600, 1200, (Box("leaf", 1000, 200, 1400, 700),), "test")
    dataset = make_dataset([record], ClassMap(("leaf",)), max_boxes=4).repeat(6)
    for batch in augment_batches(dataset, image_size=256, batch_size=1, seed=3, shuffle_buffer=None, max_boxes=4):
        pixels = batch["images"][0].numpy().mean(axis=-1)
        x0, y0, x1, y1 = batch["bounding_boxes"]["boxes"][0, 0].numpy()
        assert batch["bounding_boxes"]["classes"][0, 0] == 0
        inside = pixels[int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2]
        assert inside.size and inside.min() > 200
        outside = pixels.copy()
        outside[max(int(y0) - 2, 0) : int(y1) + 2, max(int(x0) - 2, 0) : int(x1) + 2] = 0
        assert outside.max() < 50


def test_every_epoch_draws_anew_and_the_seed_fixes_all(sample_root: Path) -> None:
    from detector.data import load_plantdoc

    records, _ = load_plantdoc(sample_root, split="train")
    dataset = make_dataset(records, build_class_map(records))

    def epochs(seed: int) -> list[bytes]:
        batches = augment_batches(dataset, image_size=128, batch_size=32, seed=seed)
        return [tf.io.serialize_tensor(next(iter(batches))["images"]).numpy() for _ in range(2)]

    first, again = epochs(4), epochs(4)
    assert first == again
    assert first[0] != first[1]
