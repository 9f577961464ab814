"""A trained RetinaNet as a SavedModel that serves finished detections, and SageMaker's archive of it.

KerasCV's ``model.export()`` writes a SavedModel that returns raw anchor outputs. The one written
here has a ``serve`` signature that does everything :func:`Predictor.predict` promises:

    images uint8 [B, H, W, 3]  (``serve_float32``: float32 0-255; B images of one size)
      -> resize, aspect kept, and pad bottom/right to ``image_size`` square (augment.resize_images,
         what validation and evaluation feed the model)
      -> RetinaNet -> decode_predictions (anchors + MultiClassNonMaxSuppression)
      -> boxes mapped back to the pixels of the image that was given
    outputs: boxes float32 [B, D, 4] xyxy pixels, scores float32 [B, D], classes int32 [B, D],
             num_detections int32 [B]; rows past num_detections are -1. D = max_detections.

The export folder is the SavedModel itself (``saved_model.pb``, ``variables/``) with
``metadata.json`` beside it; :func:`package_model_tar` puts the same files at the root of
``model.tar.gz``, which SageMaker extracts into ``/opt/ml/model``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from detector.config import BOX_FORMAT
from detector.data import ClassMap
from detector.errors import ExportError, ExportFormatError, InvalidImageError, UnreadableModelError

if TYPE_CHECKING:
    from detector.model import ModelConfig

log = logging.getLogger(__name__)

# Bump when metadata.json or the signature's inputs/outputs change; readers refuse other versions.
EXPORT_FORMAT_VERSION = 1
EXPORT_KIND = "detector-savedmodel"
METADATA_FILE = "metadata.json"
SIGNATURE = "serve"
FLOAT_SIGNATURE = "serve_float32"
# Tar entries get this mtime, owner and mode, so the same export gives the same archive bytes.
_TAR_MTIME = 0


class Detection(TypedDict):
    """One detected object; ``box`` is ``[x1, y1, x2, y2]`` in pixels of the image given."""

    class_name: str
    class_id: int
    box: list[float]
    score: float


@dataclass(frozen=True)
class ExportMetadata:
    """What ``metadata.json`` holds: enough to serve and to tell which model this is."""

    class_names: tuple[str, ...]
    config: dict[str, Any]
    decoder: dict[str, Any]
    versions: dict[str, str]
    format_version: int = EXPORT_FORMAT_VERSION

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    def to_json(self) -> str:
        data = {
            "format-version": self.format_version,
            "kind": EXPORT_KIND,
            "classes": list(self.class_names),
            "box_format": BOX_FORMAT,
            "signature": SIGNATURE,
            "signatures": {
                SIGNATURE: "images uint8 [batch, height, width, 3]",
                FLOAT_SIGNATURE: "images float32 0-255 [batch, height, width, 3]",
            },
            "outputs": {
                "boxes": "float32 [batch, max_detections, 4] xyxy pixels of the input image, -1 padding",
                "scores": "float32 [batch, max_detections], -1 padding",
                "classes": "int32 [batch, max_detections] index into classes, -1 padding",
                "num_detections": "int32 [batch]",
            },
            "preprocessing": "resize keeping the aspect ratio so the longer side is image_size, pad bottom/right",
            "decoder": self.decoder,
            "config": self.config,
            "versions": self.versions,
        }
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> ExportMetadata:
        """Parse and validate ``metadata.json``. Raises ExportFormatError."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ExportFormatError(where, f"not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("kind") != EXPORT_KIND:
            raise ExportFormatError(where, f"not a detector export (kind {_get(data, 'kind')!r})")
        version = data.get("format-version")
        if version != EXPORT_FORMAT_VERSION:
            raise ExportFormatError(
                where, f"format-version {version!r}; this detector reads version {EXPORT_FORMAT_VERSION}"
            )
        names, config = data.get("classes"), data.get("config")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ExportFormatError(where, "classes must be a non-empty list of names")
        if not isinstance(config, dict) or not isinstance(config.get("image_size"), int):
            raise ExportFormatError(where, "config must be an object with an integer image_size")
        return cls(
            class_names=tuple(names),
            config=config,
            decoder=dict(data.get("decoder") or {}),
            versions=dict(data.get("versions") or {}),
        )


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


@dataclass(frozen=True)
class ExportedModel:
    """An export folder: the SavedModel (``path``) and its ``metadata.json``."""

    path: Path
    metadata: ExportMetadata

    @property
    def metadata_path(self) -> Path:
        return self.path / METADATA_FILE

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names


@dataclass(frozen=True)
class ModelArchive:
    """A ``model.tar.gz`` and the SHA-256 of its bytes (what the SageMaker deploy keys on)."""

    path: Path
    sha256: str
    size: int


def letterbox_scale(height: Any, width: Any, image_size: int) -> tuple[Any, Any]:
    """(sx, sy): multiply model-frame ``x`` and ``y`` by these to get pixels of the original image.

    Mirrors KerasCV's ``Resizing(pad_to_aspect_ratio=True)`` (what ``augment.resize_images``
    uses): the scale is ``min(S / h, S / w)`` in float32 and the resized size is truncated to
    whole pixels, so each axis has its own factor. Works on tensors (in the serving graph) and on
    Python numbers (eagerly); returns float32 tensors.
    """
    import tensorflow as tf

    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    scale = tf.minimum(image_size / h, image_size / w)
    resized_h = tf.floor(h * scale)
    resized_w = tf.floor(w * scale)
    return w / resized_w, h / resized_h


def _serving_function(model: Any, resizer: Any, image_size: int) -> Any:
    import tensorflow as tf

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        x = tf.ensure_shape(resizer(tf.cast(images, tf.float32)), [None, image_size, image_size, 3])
        # The functional RetinaNet's input is named "images": a dict avoids Keras' structure warning.
        decoded = model.decode_predictions(model({"images": x}, training=False), x)
        sx, sy = letterbox_scale(height, width, image_size)
        classes = tf.cast(decoded["classes"], tf.int32)
        valid = classes >= 0
        boxes = decoded["boxes"] * tf.stack([sx, sy, sx, sy])
        limit = tf.stack([tf.cast(width, tf.float32), tf.cast(height, tf.float32)] * 2)
        boxes = tf.clip_by_value(boxes, 0.0, limit)
        return {
            "boxes": tf.where(valid[..., None], boxes, -1.0),
            "scores": tf.where(valid, decoded["confidence"], -1.0),
            "classes": tf.where(valid, classes, -1),
            "num_detections": tf.cast(decoded["num_detections"], tf.int32),
        }

    return serve


def _decoder_settings(model: Any) -> dict[str, Any]:
    decoder = model.prediction_decoder
    return {
        "type": type(decoder).__name__,
        **{
            key: getattr(decoder, key)
            for key in ("iou_threshold", "confidence_threshold", "max_detections", "max_detections_per_class")
            if hasattr(decoder, key)
        },
    }


def _versions() -> dict[str, str]:
    import keras
    import keras_cv
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_cv": keras_cv.__version__}


def export_model(
    model: Any, config: ModelConfig, class_map: ClassMap, out_dir: Path, *, overwrite: bool = False
) -> ExportedModel:
    """Write ``model`` as a SavedModel with decoding and NMS in its ``serve`` signature.

    The folder is written beside ``out_dir`` and moved into place when complete, so a failed
    export leaves nothing half-written. Returns the ExportedModel. Raises ExportError when
    ``out_dir`` exists and is not empty (unless ``overwrite``), or when the model does not fit
    ``config`` and ``class_map``.
    """
    import keras
    import tensorflow as tf

    from detector.augment import inference_resizer

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(
            f"{out_dir} exists and is not empty",
            fix="choose a new --out folder, or remove the old export first",
        )
    if model.num_classes != len(class_map):
        raise ExportError(
            f"the model predicts {model.num_classes} classes but the class map has {len(class_map)}",
            fix="export with the class map saved next to the weights the model was trained with",
        )
    size = config.image_size
    resizer = inference_resizer(size)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(resizer)  # its random generator holds a variable the archive must own
    serve = _serving_function(model, resizer, size)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    archive.add_endpoint(FLOAT_SIGNATURE, serve, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    metadata = ExportMetadata(
        class_names=class_map.names,
        config=config.to_dict(),
        decoder=_decoder_settings(model),
        versions=_versions(),
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive.write_out(str(staging), verbose=False)
        (staging / METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")
        # mkdtemp made the folder 0700: a container's user (SageMaker's, or uid 1000 in the
        # image) mounting it at /opt/ml/model must read it, as a model.tar.gz extracts.
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %s (%d classes) to %s", config.name, len(class_map), out_dir)
    return ExportedModel(path=out_dir, metadata=metadata)


def model_from_weights(config: ModelConfig, class_map: ClassMap, weights: Path) -> Any:
    """Build ``config``'s RetinaNet for ``class_map`` and load ``weights`` (a ``.weights.h5``).

    Raises ExportError when the file is missing or was saved from another configuration.
    """
    from detector.model import build_model

    weights = Path(weights)
    if not weights.is_file():
        raise ExportError(
            f"{weights}: no such weights file",
            fix="pass --weights RUN_DIR/checkpoints/best.weights.h5 (or last.weights.h5) of a training run",
        )
    model = build_model(config, num_classes=len(class_map))
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(
            f"{weights} does not fit a {config.name!r} model with {len(class_map)} classes ({first})",
            fix="pass the --config and --class-map the weights were trained with",
        ) from None
    return model


def require_readable(folder: Path) -> None:
    """Raises UnreadableModelError naming what under ``folder`` this user cannot read or enter."""
    unreadable: list[str] = []
    if not folder.exists():
        return  # the caller says what is missing
    for parent, dirs, files in os.walk(folder, onerror=lambda error: unreadable.append(str(error.filename))):
        for name in dirs:
            if not os.access(os.path.join(parent, name), os.R_OK | os.X_OK):
                unreadable.append(os.path.join(parent, name))
        for name in files:
            if not os.access(os.path.join(parent, name), os.R_OK):
                unreadable.append(os.path.join(parent, name))
    if unreadable:
        raise UnreadableModelError(folder, sorted(set(unreadable)))


def read_metadata(export_dir: Path) -> ExportMetadata:
    """Read and validate ``export_dir/metadata.json``. Raises UnreadableModelError, ExportFormatError."""
    export_dir = Path(export_dir)
    try:
        require_readable(export_dir)
    except PermissionError:  # a parent folder cannot be entered
        raise UnreadableModelError(export_dir, [str(export_dir)]) from None
    path = export_dir / METADATA_FILE
    if not (Path(export_dir) / "saved_model.pb").is_file():
        raise ExportFormatError(str(export_dir), "no saved_model.pb: not an export folder")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ExportFormatError(str(path), f"cannot read it ({error.strerror or error})") from None
    return ExportMetadata.from_json(text, where=str(path))


def _tar_info(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = _TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def package_model_tar(export_dir: Path, out_path: Path) -> ModelArchive:
    """Write ``out_path`` (``model.tar.gz``): the export folder's files at the archive root.

    Entries are sorted, with fixed mtime, owner and mode, and gzip's header timestamp is zero:
    the same export gives the same bytes. Returns the ModelArchive. Raises ExportFormatError
    when ``export_dir`` is not an export.
    """
    export_dir, out_path = Path(export_dir), Path(out_path)
    read_metadata(export_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in export_dir.rglob("*"))
    partial = out_path.with_name(out_path.name + ".partial")
    with (
        open(partial, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=_TAR_MTIME) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in paths:
            tar.add(path, arcname=path.relative_to(export_dir).as_posix(), recursive=False, filter=_tar_info)
    os.replace(partial, out_path)
    digest = hashlib.sha256(out_path.read_bytes()).hexdigest()
    return ModelArchive(path=out_path, sha256=digest, size=out_path.stat().st_size)


@dataclass
class Predictor:
    """An exported model loaded in this process; ``predict`` is safe to call from many threads."""

    path: Path
    metadata: ExportMetadata
    # The loaded SavedModel: its signatures' variables live as long as it does.
    _loaded: Any = field(repr=False)
    # TF functions are thread-safe, but concurrent calls on a CPU only compete for the same cores
    # and each holds its own activations: one call at a time keeps latency and memory bounded.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names

    def predict(self, image: Any) -> list[Detection]:
        """Detections in ``image`` (HxWx3 uint8 RGB), best first; boxes in its pixels.

        Raises InvalidImageError for anything else (other shapes, dtypes, an empty image).
        """
        import tensorflow as tf

        array = validate_image(image, image_size=self.metadata.image_size)
        with self._lock:
            outputs = self._loaded.signatures[SIGNATURE](images=tf.constant(array[None]))
        return detections_from_outputs(outputs, self.class_names)


def validate_image(image: Any, *, image_size: int) -> np.ndarray:
    """``image`` as a C-contiguous HxWx3 uint8 array. Raises InvalidImageError."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise InvalidImageError(f"image must be uint8 RGB, got dtype {array.dtype}")
    if array.ndim != 3 or array.shape[2] != 3:
        raise InvalidImageError(f"image must be height x width x 3 (RGB), got shape {list(array.shape)}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise InvalidImageError(f"image is empty ({width}x{height} pixels)")
    if min(height, width) * image_size < max(height, width):
        # The shorter side would shrink below one pixel when the longer one becomes image_size.
        raise InvalidImageError(f"image is too narrow to detect in ({width}x{height} pixels)")
    return np.ascontiguousarray(array)


def load_exported(export_dir: Path) -> Predictor:
    """Load an export folder (or SageMaker's /opt/ml/model) for prediction.

    Raises ExportFormatError when the folder is not an export this detector can read.
    """
    export_dir = Path(export_dir)
    metadata = read_metadata(export_dir)
    import tensorflow as tf  # only now: a wrong folder is reported without TensorFlow's start-up

    try:
        loaded = tf.saved_model.load(str(export_dir))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ExportFormatError(str(export_dir), f"the SavedModel cannot be loaded ({error})") from None
    if SIGNATURE not in loaded.signatures:
        raise ExportFormatError(str(export_dir), f"the SavedModel has no {SIGNATURE!r} signature")
    return Predictor(path=export_dir, metadata=metadata, _loaded=loaded)


def detections_from_outputs(
    outputs: Mapping[str, Any], class_names: tuple[str, ...], index: int = 0
) -> list[Detection]:
    """Detections of image ``index`` from padded arrays (boxes, scores or confidence, classes, num_detections)."""
    count = int(np.asarray(outputs["num_detections"])[index])
    scores = outputs["scores"] if "scores" in outputs else outputs["confidence"]
    return [
        Detection(class_name=class_names[int(k)], class_id=int(k), box=[float(v) for v in box], score=float(s))
        for box, s, k in zip(
            np.asarray(outputs["boxes"])[index][:count],
            np.asarray(scores)[index][:count],
            np.asarray(outputs["classes"])[index][:count],
            strict=True,
        )
    ]
