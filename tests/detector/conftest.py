"""Fixtures for the detector: PlantDoc annotations with blank images, the sample dataset, an export.

``data/plantdoc/`` holds annotation files of PlantDoc's object-detection release, unmodified
(provenance and licence in its SOURCE.md); it has no images, so ``plantdoc_root`` writes a
blank JPEG for every image the annotations name, at the size they state.
"""

from __future__ import annotations

import csv
import io
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from detector.sample import generate_sample

PLANTDOC = Path(__file__).parent / "data" / "plantdoc"
SPLITS = {"train": "TRAIN", "test": "TEST"}
# The size given to images annotated as 0x0: smaller than their boxes, so one box is clipped
# and one ends up with no area (SouthernRustLeaf's box starts at y=142).
ZERO_SIZE_FALLBACK = (320, 140)


def stated_size(width: str | None, height: str | None) -> tuple[int, int]:
    return int(width or 0), int(height or 0)


def blank_jpeg(size: tuple[int, int], cache: dict[tuple[int, int], bytes]) -> bytes:
    if size not in cache:
        buffer = io.BytesIO()
        Image.new("L", size, 128).save(buffer, "JPEG", quality=10)
        cache[size] = buffer.getvalue()
    return cache[size]


@pytest.fixture(scope="session")
def plantdoc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of data/plantdoc with an image for every XML and CSV name. Read-only for tests.

    Sizes: the XML's ``<size>`` (for names in both, the XML wins), else the first CSV row's;
    ``ZERO_SIZE_FALLBACK`` where that is 0x0. ``image_sizes(root)`` tells what was written.
    """
    root = tmp_path_factory.mktemp("plantdoc")
    cache: dict[tuple[int, int], bytes] = {}
    for split, folder in SPLITS.items():
        target = root / folder
        target.mkdir()
        sizes: dict[str, tuple[int, int]] = {}
        for xml in sorted((PLANTDOC / folder).glob("*.xml")):
            shutil.copy(xml, target / xml.name)
            tree = ET.parse(xml).getroot()
            sizes[tree.findtext("filename")] = stated_size(tree.findtext("size/width"), tree.findtext("size/height"))
        with (PLANTDOC / f"{split}_labels.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                sizes.setdefault(row["filename"], stated_size(row["width"], row["height"]))
        shutil.copy(PLANTDOC / f"{split}_labels.csv", root / f"{split}_labels.csv")
        for name, size in sizes.items():
            actual = size if size[0] > 0 and size[1] > 0 else ZERO_SIZE_FALLBACK
            (target / name).write_bytes(blank_jpeg(actual, cache))
    return root


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample dataset (12 images, 128 px), made once per session. Read-only for tests."""
    root = tmp_path_factory.mktemp("sample") / "sample"
    generate_sample(root, images=12, seed=7, size=128)
    return root


@dataclass(frozen=True)
class ExportedFixture:
    """A 3-class ``test``-config RetinaNet, its weights and class map files, and its export."""

    model: Any
    config: Any
    class_map: Any
    weights: Path
    class_map_path: Path
    export: Any

    @property
    def path(self) -> Path:
        return Path(self.export.path)


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> ExportedFixture:
    """Built and exported once per session (~10 s). Read-only for tests.

    The weights are untrained, but the classification head's last layer is sharpened (kernel
    x30, bias +2.5) so scores spread over 0.5-0.9 instead of all sitting at the 0.01 prior: the
    detections then differ clearly from one another, and comparisons between the SavedModel,
    the server and Keras' own ``predict`` do not hinge on near-ties in non-max suppression.
    """
    from detector.data import ClassMap, save_class_map
    from detector.export import export_model
    from detector.model import build_model, get_config

    root = tmp_path_factory.mktemp("exported")
    config = get_config("test", max_detections=10)
    class_map = ClassMap(("blight", "healthy", "rust"))
    model = build_model(config, num_classes=len(class_map), seed=0)
    head = model.classification_head.prediction_layer
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 30, bias + 2.5])
    weights = root / "model.weights.h5"
    model.save_weights(str(weights))
    class_map_path = root / "class_map.json"
    save_class_map(class_map, class_map_path)
    export = export_model(model, config, class_map, root / "export")
    return ExportedFixture(model, config, class_map, weights, class_map_path, export)


@pytest.fixture(scope="session")
def predictor(exported_model: ExportedFixture) -> Any:
    """The session's export loaded in this process (detector.export.Predictor)."""
    from detector.export import load_exported

    return load_exported(exported_model.path)


@pytest.fixture(autouse=True, scope="session")
def isolated_decode_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The decode check's cache lives in the session's temp folder, never in the user's ~/.cache."""
    import os

    previous = os.environ.get("DETECTOR_CACHE_DIR")
    os.environ["DETECTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("detector-cache"))
    yield
    if previous is None:
        os.environ.pop("DETECTOR_CACHE_DIR", None)
    else:
        os.environ["DETECTOR_CACHE_DIR"] = previous
