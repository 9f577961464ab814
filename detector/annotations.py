"""Reading detection annotations: PlantDoc's VOC XML and labels CSV, and COCO JSON. No TensorFlow.

- :func:`load_plantdoc` reads one split of PlantDoc's object-detection release: ``TRAIN/`` and
  ``TEST/`` folders of images + Pascal VOC XML, or ``train_labels.csv`` / ``test_labels.csv``
  (``filename,width,height,class,xmin,ymin,xmax,ymax``, one row per box).
  :func:`read_voc_dir`, :func:`read_labels_csv` and :func:`read_coco` read one source each.
- Every box is clipped to its image; boxes left with no area (or not finite) are dropped. Both
  are counted in a :class:`LoadReport`, which also lists the file and box of every drop.
- Class names lose surrounding whitespace. Records come in a stable order: XML files sorted by
  name, CSV and COCO images in the order of the file.

What the real files hold (checked on the release): the XML ``<filename>`` is the image's name,
which is the XML's name with ``.xml`` replaced by ``.jpg`` (``tomatofactsheet.png.xml`` ->
``tomatofactsheet.png.png``, ``DSCN1015.JPG.xml`` -> ``DSCN1015.JPG.jpg``); names keep ``%20``,
``?``, ``&``, ``,`` and ``+`` literally; ``<folder>`` and ``<path>`` carry stray whitespace and
tabs. An XML's image is the one beside it: the XML stem with an image suffix (or the stem itself
when it ends in one), URL-decoded forms too; ``<filename>`` and ``<path>`` are followed only when
no such image exists, and a ``<filename>`` naming another image is reported (the release's
``Early-blight-example.ashx?mw=250.xml`` says ``Early-blight.jpg``). Every image is decoded in
full once (:mod:`detector.images`, cached by size and mtime): truncated, corrupt or non-image
files are dropped and named. A few annotations state 0x0, and their boxes run past the image;
when a stated size differs from the image's, the boxes are rescaled to the image and the report
names the file; when one CSV name covers two different images (``Early-blight.jpg`` in
train_labels.csv), the rows stating the other size are dropped.

Bad input: with ``strict=False`` (the default) an annotation that cannot be parsed, or an image
that is missing or unreadable, is skipped and listed in ``LoadReport.skipped`` with its reason,
so one bad file among 2,500 does not stop a run; ``strict=True`` raises it as a
:class:`~detector.errors.DatasetError` whose one-line headline names the file. A split with no
usable image always raises :class:`~detector.errors.EmptyDatasetError`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote

from detector import config
from detector.errors import (
    AnnotationError,
    DatasetError,
    EmptyDatasetError,
    LayoutError,
    MissingImageError,
    UnreadableImageError,
)
from detector.images import DecodeCache, default_cache

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class Box:
    """One object: its class name and ``xyxy`` corners in pixels of its image."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)


@dataclass(frozen=True)
class AnnotatedImage:
    """An image file, its real size (from its header) and its clipped boxes."""

    image: Path
    width: int
    height: int
    boxes: tuple[Box, ...]
    annotation: str  # where the boxes came from: the XML file, the CSV or the COCO JSON

    @property
    def name(self) -> str:
        return self.image.name


@dataclass(frozen=True)
class Skipped:
    item: str
    reason: str


@dataclass
class LoadReport:
    """What a loader read, kept, clipped, dropped and skipped.

    ``boxes_read == boxes_kept + boxes_dropped`` counts boxes of the images that were loaded;
    ``boxes_clipped`` are kept boxes whose corners moved onto the image.
    """

    source: str
    images: int = 0
    boxes_read: int = 0
    boxes_kept: int = 0
    boxes_clipped: int = 0
    boxes_dropped: int = 0
    sizes_from_image: int = 0  # images annotated as 0x0 (or without a size)
    images_rescaled: int = 0  # annotated size differs from the image's: boxes scaled to the image
    skipped: list[Skipped] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # "annotation: class (x0, y0, x1, y1): why"
    rescaled: list[str] = field(default_factory=list)  # "annotation: image, annotated WxH, image WxH"
    name_mismatches: list[str] = field(default_factory=list)  # XML <filename> naming another image
    images_decoded: int = 0  # fully decoded now (the others came from the decode cache)

    @property
    def unreadable(self) -> list[Skipped]:
        """Images dropped because they do not decode (truncated, corrupt, not an image)."""
        return [s for s in self.skipped if "not a readable image" in s.reason]

    def summary(self) -> str:
        text = (
            f"{self.source}: {self.images} images, {self.boxes_kept} boxes kept of {self.boxes_read} "
            f"({self.boxes_clipped} clipped to the image, {self.boxes_dropped} dropped)"
        )
        if self.sizes_from_image or self.images_rescaled:
            text += f", {self.sizes_from_image} sizes read from the image, {self.images_rescaled} rescaled"
        if self.name_mismatches:
            text += f", {len(self.name_mismatches)} XML <filename> naming another image"
        if self.skipped:
            text += f", {len(self.skipped)} skipped (first: {self.skipped[0].item}: {self.skipped[0].reason})"
        if self.unreadable:
            names = [s.item for s in self.unreadable]
            text += f"; dropped {len(names)} unreadable image(s): {', '.join(names[:10])}"
            text += ", ..." if len(names) > 10 else ""
        return text

    def details(self) -> list[str]:
        """One line per file the loader changed or dropped: what to look at in a dataset."""
        return (
            [f"skipped {s.item}: {s.reason}" for s in self.skipped]
            + [f"rescaled {line}" for line in self.rescaled]
            + [f"<filename> mismatch {line}" for line in self.name_mismatches]
        )


@dataclass(frozen=True)
class _RawBox:
    label: str
    coords: tuple[float, float, float, float]
    size: tuple[int, int]  # the size the annotation states for its image; (0, 0) when unknown


class _Reader:
    """Shared by the loaders: finds images, reads their size, fits boxes, records problems."""

    def __init__(self, source: str, *, strict: bool, decode: DecodeCache | None = None) -> None:
        self.report = LoadReport(source=source)
        self.strict = strict
        self.decode = decode if decode is not None else default_cache()
        self._listings: dict[Path, frozenset[str]] = {}

    def finish(self) -> LoadReport:
        self.decode.save()
        self.report.images_decoded = self.decode.decoded
        return self.report

    def problem(self, item: str, error: DatasetError) -> None:
        if self.strict:
            raise error
        self.report.skipped.append(Skipped(item, error.headline))

    def find_image(self, folder: Path, names: Iterable[str]) -> tuple[Path | None, tuple[str, ...]]:
        # One listing per folder: faster than a stat per candidate, and exact about case.
        if folder not in self._listings:
            self._listings[folder] = frozenset(p.name for p in folder.iterdir()) if folder.is_dir() else frozenset()
        tried = tuple(dict.fromkeys(n for n in names if n and "/" not in n))
        for name in tried:
            if name in self._listings[folder]:
                return folder / name, tried
        return None, tried

    def image_size(self, path: Path) -> tuple[int, int] | None:
        try:
            return self.decode.check(path)  # decoded in full once, then cached by size + mtime
        except UnreadableImageError as error:
            self.problem(path.name, error)
            return None

    def add(self, image: Path, size: tuple[int, int], raw: Sequence[_RawBox], annotation: str) -> AnnotatedImage:
        width, height = size
        sizes = {box.size for box in raw if box.size[0] > 0 and box.size[1] > 0}
        self.report.sizes_from_image += any(box.size[0] <= 0 or box.size[1] <= 0 for box in raw)
        # Rows of one CSV name that disagree on the size describe two different images.
        conflicting = len(sizes) > 1 and size in sizes
        rescaled = False
        boxes: list[Box] = []
        for box in raw:
            self.report.boxes_read += 1
            coords = box.coords
            if box.size[0] > 0 and box.size[1] > 0 and box.size != size:
                if conflicting:
                    self._drop(annotation, box, f"annotated for a {box.size[0]}x{box.size[1]} image of that name")
                    continue
                sx, sy = width / box.size[0], height / box.size[1]
                coords = (coords[0] * sx, coords[1] * sy, coords[2] * sx, coords[3] * sy)
                rescaled = True
            fitted = _clip(coords, width, height)
            if fitted is None:
                self._drop(annotation, box, "no area inside the image")
                continue
            self.report.boxes_kept += 1
            self.report.boxes_clipped += fitted != coords
            boxes.append(Box(box.label, *fitted))
        if rescaled:
            stated = next(b.size for b in raw if b.size[0] > 0 and b.size[1] > 0 and b.size != size)
            self.report.rescaled.append(
                f"{annotation}: {image.name}, annotated {stated[0]}x{stated[1]}, image {width}x{height}"
            )
        self.report.images += 1
        self.report.images_rescaled += rescaled
        return AnnotatedImage(image=image, width=width, height=height, boxes=tuple(boxes), annotation=annotation)

    def _drop(self, annotation: str, box: _RawBox, why: str) -> None:
        self.report.boxes_dropped += 1
        self.report.dropped.append(f"{annotation}: {box.label} {box.coords}: {why}")


def _clip(coords: tuple[float, float, float, float], width: int, height: int) -> tuple[float, ...] | None:
    """``coords`` clipped to the image, or None when nothing of the box is left (or it is not finite)."""
    if not all(math.isfinite(c) for c in coords):
        return None
    x0, y0, x1, y1 = coords
    w, h = float(width), float(height)
    fitted = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
    if fitted[2] <= fitted[0] or fitted[3] <= fitted[1]:
        return None
    return fitted


def _image_names(*names: str | None, stem: str | None = None) -> list[str]:
    """Candidate file names for an image, most trusted first (see the module docstring)."""
    found = [PurePosixPath(n.strip().replace("\\", "/")).name for n in names if n and n.strip()]
    if stem:
        found += [stem + suffix for suffix in IMAGE_SUFFIXES]
        if PurePosixPath(stem).suffix in IMAGE_SUFFIXES:  # "DSCN1015.JPG.xml" may sit next to "DSCN1015.JPG"
            found.append(stem)
    return found + [unquote(n) for n in found if unquote(n) != n]


def _number(text: str | None, what: str) -> float:
    if text is None or not text.strip():
        raise ValueError(f"no {what}")
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{what} is not a number: {text.strip()!r}") from None


def _corners(get: Callable[[str], str | None], what: str = "{}") -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (_number(get(k), what.format(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    return x0, y0, x1, y1


def _size(width: str | None, height: str | None) -> tuple[int, int]:
    try:
        return int(float(width or 0)), int(float(height or 0))
    except ValueError:
        return 0, 0  # the image's own size is used instead


def _parse_voc(path: Path) -> tuple[list[str | None], list[_RawBox]]:
    """The image-name candidates and boxes of one VOC XML file. Raises AnnotationError."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise AnnotationError(path.name, f"not readable as Pascal VOC XML ({error})") from None
    if root.tag != "annotation":
        raise AnnotationError(path.name, f"expected an <annotation> root element, found <{root.tag}>")
    size = _size(root.findtext("size/width"), root.findtext("size/height"))
    boxes = []
    for index, obj in enumerate(root.iter("object"), start=1):
        label = (obj.findtext("name") or "").strip()
        if not label:
            raise AnnotationError(path.name, f"object {index} has no <name>")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError(path.name, f"object {index} ({label}) has no <bndbox>")
        try:
            coords = _corners(bndbox.findtext, "<{}>")
        except ValueError as error:
            raise AnnotationError(path.name, f"object {index} ({label}): bad <bndbox>: {error}") from None
        boxes.append(_RawBox(label, coords, size))
    return [root.findtext("filename"), root.findtext("path")], boxes


def read_voc_dir(
    folder: Path, *, strict: bool = False, decode: DecodeCache | None = None
) -> tuple[list[AnnotatedImage], LoadReport]:
    """Read every ``*.xml`` in ``folder`` (sorted by name) with the image it belongs to.

    An XML's boxes belong to the image beside it (same stem, see :func:`_image_names`); a
    ``<filename>`` naming another image is reported in ``LoadReport.name_mismatches``. Only when
    no image sits beside the XML is ``<filename>`` (then ``<path>``) followed, and reported, unless
    that image has an XML of its own. Returns the images with their clipped boxes and the report.
    Raises AnnotationError, MissingImageError or UnreadableImageError for the first bad file when
    ``strict``. ``decode`` is the decode-check cache (default: the user's, see detector.images).
    """
    reader = _Reader(folder.name.strip() or str(folder), strict=strict, decode=decode)
    xmls = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
    stems = {xml.name[: -len(".xml")] for xml in xmls}
    records = []
    for xml in xmls:
        try:
            names, raw = _parse_voc(xml)
        except AnnotationError as error:
            reader.problem(xml.name, error)
            continue
        stem = xml.name[: -len(".xml")]
        tag = PurePosixPath((names[0] or "").strip().replace("\\", "/")).name
        beside = _image_names(stem=stem)
        if tag in beside:  # "DSCN1015.JPG.xml" + <filename>DSCN1015.JPG.jpg: the tag picks among them
            beside.insert(0, tag)
        image, tried = reader.find_image(folder, beside)
        if image is None:
            image, more = reader.find_image(folder, _image_names(*names))
            tried += more
            if image is not None and _stem_of(image.name) in stems - {stem}:
                reader.problem(
                    xml.name,
                    AnnotationError(
                        xml.name, f"no image beside it, and its <filename> {image.name} has an XML of its own"
                    ),
                )
                continue
        if image is None:
            reader.problem(xml.name, MissingImageError(xml.name, folder, tried))
            continue
        if image.name not in beside:
            reader.report.name_mismatches.append(
                f"{xml.name}: no image beside it; boxes go to {image.name}, named in it"
            )
        elif tag and tag != image.name and unquote(tag) != unquote(image.name):
            reader.report.name_mismatches.append(f"{xml.name}: <filename> is {tag}; boxes go to {image.name} beside it")
        if (size := reader.image_size(image)) is not None:
            records.append(reader.add(image, size, raw, xml.name))
    return records, reader.finish()


def _stem_of(image_name: str) -> str:
    path = PurePosixPath(image_name)
    return path.stem if path.suffix in IMAGE_SUFFIXES else image_name


def read_labels_csv(path: Path, image_dir: Path, *, strict: bool = False) -> tuple[list[AnnotatedImage], LoadReport]:
    """Read a PlantDoc labels CSV: rows of one ``filename`` become one image (first-seen order).

    Returns the images (found in ``image_dir``) with their clipped boxes and the report.
    Raises AnnotationError (a missing column always; a bad row when ``strict``),
    MissingImageError or UnreadableImageError when ``strict``.
    """
    reader = _Reader(path.name, strict=strict)
    groups: dict[str, list[_RawBox]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = csv.DictReader(handle)
            missing = [c for c in config.CSV_COLUMNS if c not in (rows.fieldnames or [])]
            if missing:
                raise AnnotationError(path.name, f"missing column(s) {', '.join(missing)} in the header")
            for row in rows:
                where = f"{path.name} line {rows.line_num}"
                try:
                    coords = _corners(row.get)
                    label = (row["class"] or "").strip()
                    if not label or not row["filename"]:
                        raise ValueError("empty filename or class")
                except (ValueError, TypeError) as error:
                    reader.problem(where, AnnotationError(where, str(error)))
                    continue
                size = _size(row["width"], row["height"])
                groups.setdefault(row["filename"], []).append(_RawBox(label, coords, size))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise AnnotationError(path.name, f"not readable as CSV ({error})") from None
    records = []
    for filename, raw in groups.items():
        image, tried = reader.find_image(image_dir, _image_names(filename))
        if image is None:
            reader.problem(filename, MissingImageError(f"{path.name}: {filename}", image_dir, tried))
            continue
        if (actual := reader.image_size(image)) is not None:
            records.append(reader.add(image, actual, raw, path.name))
    return records, reader.finish()


def read_coco(
    path: Path, image_dir: Path | None = None, *, strict: bool = False
) -> tuple[list[AnnotatedImage], LoadReport]:
    """Read a COCO detection JSON (``images``, ``annotations`` with ``[x, y, w, h]``, ``categories``).

    Images are looked up in ``image_dir`` (default: the JSON's folder), in the JSON's order.
    ``iscrowd`` annotations are kept as ordinary boxes. Raises AnnotationError for a JSON that
    is not COCO detection, and for bad entries, missing or unreadable images when ``strict``.
    """
    image_dir = image_dir or path.parent
    reader = _Reader(path.name, strict=strict)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        categories = {c["id"]: str(c["name"]).strip() for c in data["categories"]}
        images = data["images"]
        annotations = data.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AnnotationError(path.name, f"not a COCO detection file ({type(error).__name__}: {error})") from None
    by_image: dict[Any, list[_RawBox]] = {}
    sizes = {entry.get("id"): _size(entry.get("width"), entry.get("height")) for entry in images}
    for index, ann in enumerate(annotations):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            label = categories[ann["category_id"]]
            by_image.setdefault(ann["image_id"], []).append(
                _RawBox(label, (x, y, x + w, y + h), sizes[ann["image_id"]])
            )
        except (KeyError, ValueError, TypeError) as error:
            where = f"{path.name} annotation {index}"
            reader.problem(where, AnnotationError(where, f"bad entry ({type(error).__name__}: {error})"))
    records = []
    for entry in images:
        name = str(entry.get("file_name", ""))
        image, tried = reader.find_image(image_dir, _image_names(name))
        if image is None:
            reader.problem(name, MissingImageError(f"{path.name}: {name}", image_dir, tried))
            continue
        if (size := reader.image_size(image)) is not None:
            records.append(reader.add(image, size, by_image.get(entry.get("id"), []), path.name))
    return records, reader.finish()


def _child_dir(root: Path, name: str) -> Path | None:
    # Folder names in the wild carry stray whitespace and any case ("TRAIN", "train ").
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.strip().upper() == name.upper():
            return child
    return None


def load_plantdoc(
    root: Path,
    *,
    split: Literal["train", "test"] = "train",
    source: Literal["auto", "xml", "csv"] = "auto",
    strict: bool = False,
) -> tuple[list[AnnotatedImage], LoadReport]:
    """Read one split of a PlantDoc-layout dataset under ``root``.

    ``source="auto"`` reads the split folder's VOC XML files when it has any, else the split's
    labels CSV (whose images live in the split folder). Returns the images and the report
    (also logged). Raises LayoutError when neither is there, EmptyDatasetError when nothing
    usable was found, and the errors of :func:`read_voc_dir` / :func:`read_labels_csv`.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(root, "no such dataset folder")
    folder = _child_dir(root, config.SPLIT_DIRS[split])
    labels = root / config.LABEL_CSVS[split]
    has_xml = folder is not None and any(p.suffix.lower() == ".xml" for p in folder.iterdir())
    if source == "xml" or (source == "auto" and has_xml):
        if folder is None:
            raise LayoutError(root, f"no {config.SPLIT_DIRS[split]}/ folder")
        records, report = read_voc_dir(folder, strict=strict)
    elif labels.is_file():
        records, report = read_labels_csv(labels, folder or root / config.SPLIT_DIRS[split], strict=strict)
    else:
        raise LayoutError(root, f"no {config.SPLIT_DIRS[split]}/*.xml and no {labels.name}")
    if not records:
        first = f" ({len(report.skipped)} skipped, first: {report.skipped[0].reason})" if report.skipped else ""
        raise EmptyDatasetError(f"{root}: no usable image in the {split} split{first}")
    log.info("%s", report.summary())
    return records, report
