"""The SavedModel export: detections like Keras' own predict, in the input's pixels; its archive."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.__main__ import main
from detector.errors import ExportError, ExportFormatError, InvalidImageError
from detector.export import (
    EXPORT_FORMAT_VERSION,
    FLOAT_SIGNATURE,
    SIGNATURE,
    detections_from_outputs,
    export_model,
    letterbox_scale,
    load_exported,
    package_model_tar,
    read_metadata,
)
from tests.detector.conftest import ExportedFixture
from tests.detector.support import assert_same_detections, leaf_image

# (width, height): landscape, portrait, square at the model's size, larger than it, odd sizes.
SIZES = [(160, 90), (75, 200), (128, 128), (301, 300), (97, 333)]


def keras_detections(fixture: ExportedFixture, image: np.ndarray) -> list[dict[str, Any]]:
    """What the Keras model itself predicts for ``image``, mapped to the image's pixels."""
    from detector.augment import resize_images

    size = fixture.config.image_size
    height, width = image.shape[:2]
    output = fixture.model.predict(resize_images(image[None], size), verbose=0)
    sx, sy = (float(v) for v in letterbox_scale(height, width, size))
    boxes = np.asarray(output["boxes"], dtype=np.float64) * [sx, sy, sx, sy]
    boxes = np.clip(boxes, 0, [width, height, width, height])
    outputs = {**output, "boxes": boxes, "classes": np.asarray(output["classes"]).astype(int)}
    return detections_from_outputs(outputs, fixture.class_map.names)


def test_export_folder_is_a_savedmodel_with_metadata(exported_model: ExportedFixture) -> None:
    names = {p.name for p in exported_model.path.iterdir()}
    assert {"saved_model.pb", "variables", "metadata.json"} <= names
    data = json.loads((exported_model.path / "metadata.json").read_text())
    assert data["format-version"] == EXPORT_FORMAT_VERSION
    assert data["classes"] == ["blight", "healthy", "rust"]
    assert data["config"]["image_size"] == 128
    assert data["decoder"]["max_detections"] == 10
    assert data["signature"] == SIGNATURE
    metadata = read_metadata(exported_model.path)
    assert metadata.class_names == exported_model.class_map.names
    assert not list(exported_model.path.parent.glob(".export.*")), "the staging folder was left behind"
    # Readable by any user: a container runs as another uid than the one that exported.
    modes = {p.relative_to(exported_model.path): p.stat().st_mode & 0o777 for p in exported_model.path.rglob("*")}
    assert exported_model.path.stat().st_mode & 0o777 == 0o755
    assert all(mode == (0o755 if (exported_model.path / path).is_dir() else 0o644) for path, mode in modes.items())


# RetinaNet.predict_step needs a tensor (it reads images[0]); Keras warns that the input is not a dict.
@pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_predictor_matches_keras_predict_in_original_pixels(
    exported_model: ExportedFixture, predictor: Any, width: int, height: int
) -> None:
    image = leaf_image(width, height, seed=width)
    served = predictor.predict(image)
    assert served, "the fixture model should detect something"
    assert_same_detections(served, keras_detections(exported_model, image))
    for detection in served:
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    assert [d["score"] for d in served] == sorted((d["score"] for d in served), reverse=True)


@pytest.mark.parametrize(("width", "height"), [*SIZES, (1000, 129), (129, 1000), (200, 77)])
def test_letterbox_scale_matches_what_the_resizer_fills(width: int, height: int) -> None:
    from detector.augment import resize_images

    resized = resize_images(np.full((1, height, width, 3), 255, np.uint8), 128).numpy()[0, :, :, 0]
    filled_w = int((resized[0] > 0).sum())
    filled_h = int((resized[:, 0] > 0).sum())
    sx, sy = (float(v) for v in letterbox_scale(height, width, 128))
    assert width / sx == pytest.approx(filled_w)
    assert height / sy == pytest.approx(filled_h)


def test_float32_signature_and_batches_agree_with_uint8(exported_model: ExportedFixture, predictor: Any) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported_model.path))
    images = np.stack([leaf_image(140, 100, seed=1), leaf_image(140, 100, seed=2)])
    batch = loaded.signatures[SIGNATURE](images=tf.constant(images))
    floats = loaded.signatures[FLOAT_SIGNATURE](images=tf.constant(images.astype(np.float32)))
    names = exported_model.class_map.names
    for index, image in enumerate(images):
        single = predictor.predict(image)
        assert_same_detections(detections_from_outputs(batch, names, index), single)
        assert_same_detections(detections_from_outputs(floats, names, index), single)


def test_model_tar_holds_the_export_at_its_root_and_is_reproducible(
    exported_model: ExportedFixture, predictor: Any, tmp_path: Path
) -> None:
    first = package_model_tar(exported_model.path, tmp_path / "a" / "model.tar.gz")
    second = package_model_tar(exported_model.path, tmp_path / "b" / "model.tar.gz")
    assert first.sha256 == second.sha256 and first.size == second.size
    with tarfile.open(first.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {"saved_model.pb", "metadata.json", "variables/variables.index"} <= set(members)
        assert all(m.mtime == 0 and m.uid == 0 and not m.name.startswith(("/", "./")) for m in members.values())
        tar.extractall(tmp_path / "opt-ml-model", filter="data")
    image = leaf_image(150, 110, seed=5)
    assert_same_detections(load_exported(tmp_path / "opt-ml-model").predict(image), predictor.predict(image))


def test_unknown_metadata_version_and_non_exports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportFormatError, match=r"no saved_model\.pb"):
        read_metadata(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ExportFormatError, match="cannot read"):
        read_metadata(tmp_path)
    metadata = {"format-version": 99, "kind": "detector-savedmodel", "classes": ["a"], "config": {"image_size": 128}}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ExportFormatError, match="format-version 99"):
        load_exported(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ExportFormatError, match="not JSON") as raised:
        read_metadata(tmp_path)
    assert "python -m detector export" in (raised.value.fix or "")


def test_export_refuses_a_non_empty_folder_and_a_mismatched_class_map(
    exported_model: ExportedFixture, tmp_path: Path
) -> None:
    from detector.data import ClassMap

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_model(exported_model.model, exported_model.config, exported_model.class_map, tmp_path / "old")
    assert (tmp_path / "old" / "keep.txt").exists()
    with pytest.raises(ExportError, match="3 classes but the class map has 2"):
        export_model(exported_model.model, exported_model.config, ClassMap(("a", "b")), tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10), np.uint8), "height x width x 3"),
        (np.zeros((10, 10, 4), np.uint8), "height x width x 3"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((1, 500, 3), np.uint8), "too narrow"),
    ],
)
def test_predictor_refuses_what_is_not_an_rgb_image(predictor: Any, image: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        predictor.predict(image)


@pytest.mark.slow
def test_cli_export_writes_the_same_model_and_its_archive(
    exported_model: ExportedFixture, predictor: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--weights", str(exported_model.weights), "--class-map", str(exported_model.class_map_path)]
    args += ["--config", "test", "--max-detections", "10", "--out", str(tmp_path / "cli"), "--tar"]
    assert main([*args, str(tmp_path / "model.tar.gz")]) == 0
    out = capsys.readouterr().out
    assert "exported test (3 classes)" in out and "packaged" in out
    assert (tmp_path / "model.tar.gz").is_file()
    image = leaf_image(120, 170, seed=9)
    assert_same_detections(load_exported(tmp_path / "cli").predict(image), predictor.predict(image))


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("detector: error: ") and lines[1].startswith("  fix: "), err
    assert "Traceback" not in err
    return err


def test_cli_export_errors_are_one_line_and_a_fix(
    exported_model: ExportedFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--class-map", str(exported_model.class_map_path), "--out", str(tmp_path / "x")]
    err = _cli_error(capsys, ["export", "--weights", str(tmp_path / "missing.weights.h5"), "--config", "test", *common])
    assert "no such weights file" in err
    err = _cli_error(capsys, ["export", "--weights", str(exported_model.weights), "--config", "nope", *common])
    assert "unknown model configuration" in err
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"format-version": 1, "classes": ["a", "b"]}))
    argv = ["export", "--weights", str(exported_model.weights), "--config", "test", "--class-map", str(two)]
    err = _cli_error(capsys, [*argv, "--out", str(tmp_path / "y")])
    assert "does not fit" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
