"""detector.annotations and detector.data: PlantDoc's real annotation files, quirks, class map, split, tf.data."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.data import (
    AnnotatedImage,
    Box,
    ClassMap,
    build_class_map,
    encode_boxes,
    letterbox_size,
    load_class_map,
    load_plantdoc,
    make_dataset,
    read_coco,
    read_labels_csv,
    read_voc_dir,
    save_class_map,
    split_records,
)
from detector.errors import (
    AnnotationError,
    DatasetError,
    EmptyDatasetError,
    LayoutError,
    MissingImageError,
    UnknownClassError,
    UnreadableImageError,
)
from tests.detector.conftest import PLANTDOC, SPLITS, ZERO_SIZE_FALLBACK

# -- expected numbers, computed from the raw files without the code under test ------------------


@dataclass
class Expected:
    images: int = 0
    read: int = 0
    kept: int = 0
    clipped: int = 0
    dropped: int = 0


def _expect(groups: dict[str, list[tuple[tuple[int, int], tuple[float, ...]]]], actual: dict[str, tuple[int, int]]):
    """Counts for boxes grouped by image: [(stated size, xyxy)], given the size each image really has."""
    expected = Expected()
    for name, boxes in groups.items():
        width, height = actual[name]
        stated = {size for size, _ in boxes if size[0] and size[1]}
        expected.images += 1
        for size, (x0, y0, x1, y1) in boxes:
            expected.read += 1
            if size[0] and size[1] and size != (width, height):
                assert (width, height) in stated, "no such case in the files: rescaling is tested separately"
                expected.dropped += 1  # a row of another image that has the same name
                continue
            cx0, cx1 = max(0, min(x0, width)), max(0, min(x1, width))
            cy0, cy1 = max(0, min(y0, height)), max(0, min(y1, height))
            if cx1 <= cx0 or cy1 <= cy0:
                expected.dropped += 1
            else:
                expected.kept += 1
                expected.clipped += (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    return expected


def _real_size(stated: tuple[int, int]) -> tuple[int, int]:
    return stated if stated[0] and stated[1] else ZERO_SIZE_FALLBACK


def _xml_groups(folder: Path):
    groups, actual, labels = {}, {}, {}
    for xml in sorted(folder.glob("*.xml")):
        root = ET.parse(xml).getroot()
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
        boxes = []
        for obj in root.iter("object"):
            coords = tuple(float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((size, coords))
        groups[xml.name] = boxes
        actual[xml.name] = _real_size(size)
        labels[xml.name] = root.findtext("filename")
    return groups, actual, labels


def _csv_groups(path: Path, xml_sizes: dict[str, tuple[int, int]]):
    groups: dict[str, list] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            size = (int(row["width"]), int(row["height"]))
            coords = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            groups.setdefault(row["filename"], []).append((size, coords))
    # The fixture sizes an image like its XML when there is one, else like its first CSV row.
    actual = {name: _real_size(xml_sizes.get(name, boxes[0][0])) for name, boxes in groups.items()}
    return groups, actual


def _assert_report(report, expected: Expected) -> None:
    found = (report.images, report.boxes_read, report.boxes_kept, report.boxes_clipped, report.boxes_dropped)
    assert found == (expected.images, expected.read, expected.kept, expected.clipped, expected.dropped)
    assert report.skipped == []


# -- every real annotation file -----------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_real_xml_file_is_read_with_its_image(plantdoc_root: Path, split: str) -> None:
    folder = PLANTDOC / SPLITS[split]
    groups, actual, filenames = _xml_groups(folder)
    records, report = load_plantdoc(plantdoc_root, split=split)

    _assert_report(report, _expect(groups, actual))
    assert [r.annotation for r in records] == sorted(groups)  # every XML, in name order
    # The image is the one <filename> names (with %20, ?, &, commas and .JPG.jpg kept as they are).
    assert [r.name for r in records] == [filenames[xml] for xml in sorted(groups)]
    assert all((r.width, r.height) == actual[r.annotation] for r in records)
    for record in records:
        for box in record.boxes:
            assert 0 <= box.xmin < box.xmax <= record.width and 0 <= box.ymin < box.ymax <= record.height
            assert box.label == box.label.strip()


def test_real_xml_counts_match_the_source_notes(plantdoc_root: Path) -> None:
    # SOURCE.md: TRAIN/ has 91 objects, TEST/ 63; two train images are annotated as 0x0.
    _, train = load_plantdoc(plantdoc_root, split="train")
    _, test = load_plantdoc(plantdoc_root, split="test")
    assert (train.boxes_read, test.boxes_read) == (91, 63)
    assert train.sizes_from_image == 2
    # With the fixture's 320x140 for those two: one box clipped, one left without area.
    assert (train.boxes_clipped, train.boxes_dropped) == (1, 1)
    assert "SouthernRustLeaf.png.xml: Corn rust leaf" in train.dropped[0]


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_real_csv_row_is_read(plantdoc_root: Path, split: str) -> None:
    _, xml_actual, filenames = _xml_groups(PLANTDOC / SPLITS[split])
    xml_sizes = {filenames[xml]: size for xml, size in xml_actual.items()}
    groups, actual = _csv_groups(PLANTDOC / f"{split}_labels.csv", xml_sizes)

    records, report = load_plantdoc(plantdoc_root, split=split, source="csv")

    expected = _expect(groups, actual)
    _assert_report(report, expected)
    assert [r.name for r in records] == list(groups)  # one image per filename, in file order
    assert report.boxes_read == {"train": 8469, "test": 452}[split]


def test_csv_name_shared_by_two_images_keeps_the_rows_of_the_image_present(plantdoc_root: Path) -> None:
    records, report = read_labels_csv(plantdoc_root / "train_labels.csv", plantdoc_root / "TRAIN")
    (record,) = [r for r in records if r.name == "Early-blight.jpg"]
    assert (record.width, record.height) == (598, 332)
    assert len(record.boxes) == 2
    assert sum("Early-blight.jpg" not in line and "640x480" in line for line in report.dropped) == 2


def test_csv_and_xml_agree_on_the_real_test_split(plantdoc_root: Path) -> None:
    from_xml, _ = load_plantdoc(plantdoc_root, split="test", source="xml")
    from_csv, _ = load_plantdoc(plantdoc_root, split="test", source="csv")
    by_name = {r.name: r for r in from_csv}
    for record in from_xml:
        assert sorted(record.boxes, key=repr) == sorted(by_name[record.name].boxes, key=repr)


def test_class_map_of_real_files_is_sorted_stripped_and_order_free(plantdoc_root: Path) -> None:
    train, _ = load_plantdoc(plantdoc_root, split="train", source="csv")
    test, _ = load_plantdoc(plantdoc_root, split="test", source="csv")
    class_map = build_class_map(train, test)
    assert len(class_map) == 29  # SOURCE.md: 29 distinct class names
    assert list(class_map.names) == sorted(class_map.names)
    shuffled = list(test) + list(train)
    random.Random(1).shuffle(shuffled)
    assert build_class_map(shuffled) == class_map
    assert class_map.id_of("Apple Scab Leaf") == 0 and class_map.id_of("  Apple Scab Leaf\t") == 0
    assert class_map.names[-1] == "grape leaf black rot"  # sorted by code point: lower case last


# -- quirks and errors, on small hand-made files --------------------------------------------------


def _voc(filename: str | None, size: tuple[int, int], objects: list[tuple[str, tuple]]) -> str:
    parts = ["<annotation>", "<folder> leaf\t</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, (x0, y0, x1, y1) in objects:
        parts.append(
            f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join([*parts, "</annotation>"])


def _image(path: Path, size: tuple[int, int], colour=(0, 128, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return path


def test_boxes_are_clipped_and_empty_ones_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "a.jpg", (100, 50))
    objects = [
        ("spot", (10, 10, 20, 20)),  # inside
        ("spot", (-5, 10, 20, 60)),  # past two borders: clipped
        ("spot", (90, 0, 100, 50)),  # on the border: unchanged
        ("spot", (120, 10, 130, 20)),  # right of the image: dropped
        ("spot", (30, 30, 30, 40)),  # zero width: dropped
        ("spot", (40, 30, 35, 40)),  # inverted: dropped
        ("spot", ("nan", 1, 5, 5)),  # not finite: dropped
    ]
    (folder / "a.xml").write_text(_voc("a.jpg", (100, 50), objects))
    (record,), report = read_voc_dir(folder)
    assert (report.boxes_read, report.boxes_kept, report.boxes_clipped, report.boxes_dropped) == (7, 3, 1, 4)
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in record.boxes] == [
        (10, 10, 20, 20),
        (0, 10, 20, 50),
        (90, 0, 100, 50),
    ]
    assert len(report.dropped) == 4 and all(line.startswith("a.xml: spot") for line in report.dropped)
    assert "3 boxes kept of 7 (1 clipped to the image, 4 dropped)" in report.summary()


def test_stated_size_differing_from_the_image_rescales_boxes(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "a.jpg", (400, 200))
    (folder / "a.xml").write_text(_voc("a.jpg", (200, 100), [("spot", (10, 20, 50, 60))]))
    (record,), report = read_voc_dir(folder)
    assert report.images_rescaled == 1
    assert record.boxes[0] == Box("spot", 20.0, 40.0, 100.0, 120.0)


@pytest.mark.parametrize(
    ("xml_name", "filename_tag", "image_name"),
    [
        ("a.xml", "a.jpg", "a.jpg"),  # the release's case
        ("b.xml", None, "b.jpg"),  # no <filename>: the XML's stem
        ("c.xml", "elsewhere.jpg", "c.png"),  # a stale <filename>: the stem with another suffix
        ("DSCN1015.JPG.xml", "gone.jpg", "DSCN1015.JPG"),  # the stem is itself an image name
        ("x%20y.xml", "x%20y.jpg", "x y.jpg"),  # the image was saved URL-decoded
        ("q.jpeg?itok=1.xml", "q.jpeg?itok=1.jpg", "q.jpeg?itok=1.jpg"),
    ],
)
def test_the_image_is_found_by_filename_tag_or_xml_name(tmp_path, xml_name, filename_tag, image_name) -> None:
    folder = tmp_path / "TEST"
    _image(folder / image_name, (64, 48))
    (folder / xml_name).write_text(_voc(filename_tag, (64, 48), [("spot", (1, 1, 10, 10))]))
    (record,), report = read_voc_dir(folder, strict=True)
    assert record.image == folder / image_name
    assert report.skipped == []


def test_missing_image_is_skipped_with_its_reason_or_raised_when_strict(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "ok.jpg", (32, 32))
    (folder / "ok.xml").write_text(_voc("ok.jpg", (32, 32), [("spot", (1, 1, 9, 9))]))
    (folder / "lost.xml").write_text(_voc("lost.jpg", (32, 32), [("spot", (1, 1, 9, 9))]))

    records, report = load_plantdoc(tmp_path)
    assert [r.name for r in records] == ["ok.jpg"]
    assert [s.item for s in report.skipped] == ["lost.xml"]
    assert "lost.xml: no image for it in" in report.skipped[0].reason
    assert "1 skipped (first: lost.xml" in report.summary()

    with pytest.raises(MissingImageError) as caught:
        load_plantdoc(tmp_path, strict=True)
    assert "\n" not in caught.value.headline and "lost.xml" in caught.value.headline
    assert "lost.jpg" in caught.value.headline


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<annotation><object><name>spot</name>", "not readable as Pascal VOC XML"),
        ("<html></html>", "expected an <annotation> root element"),
        (_voc("bad.jpg", (32, 32), [("spot", ("abc", 1, 9, 9))]), "object 1 (spot): bad <bndbox>"),
        (_voc("bad.jpg", (32, 32), [("", (1, 1, 9, 9))]), "object 1 has no <name>"),
        ("<annotation><object><name>spot</name></object></annotation>", "object 1 (spot) has no <bndbox>"),
    ],
)
def test_malformed_xml_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "bad.jpg", (32, 32))
    (folder / "bad.xml").write_text(content)
    with pytest.raises(AnnotationError) as caught:
        read_voc_dir(folder, strict=True)
    assert caught.value.headline.startswith("bad.xml: ") and message in caught.value.headline
    assert "\n" not in caught.value.headline
    assert caught.value.render().startswith("detector: error: bad.xml: ")

    records, report = read_voc_dir(folder)
    assert records == [] and report.skipped[0].item == "bad.xml"


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "a.xml").write_text(_voc("a.jpg", (32, 32), [("spot", (1, 1, 9, 9))]))
    with pytest.raises(UnreadableImageError, match=r"a\.jpg: not a readable image"):
        read_voc_dir(folder, strict=True)
    with pytest.raises(EmptyDatasetError, match="no usable image in the train split"):
        load_plantdoc(tmp_path)


def test_layout_errors_say_how_to_make_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(LayoutError) as caught:
        load_plantdoc(tmp_path / "nowhere")
    assert "python -m detector sample --out" in caught.value.fix
    (tmp_path / "TEST").mkdir()
    with pytest.raises(LayoutError, match="no TRAIN/"):
        load_plantdoc(tmp_path, source="xml")
    with pytest.raises(LayoutError, match=r"no TEST/\*\.xml and no test_labels\.csv"):
        load_plantdoc(tmp_path, split="test")


def test_split_folders_may_carry_whitespace_and_any_case(tmp_path: Path) -> None:
    _image(tmp_path / " train\t" / "a.jpg", (32, 32))
    (tmp_path / " train\t" / "a.xml").write_text(_voc("a.jpg", (32, 32), [(" spot ", (1, 1, 9, 9))]))
    (record,), _ = load_plantdoc(tmp_path)
    assert record.boxes[0].label == "spot"


def test_csv_problems_name_the_file_and_line(tmp_path: Path) -> None:
    _image(tmp_path / "TRAIN" / "a.jpg", (32, 32))
    labels = tmp_path / "train_labels.csv"
    labels.write_text("filename,width,height,class\na.jpg,32,32,spot\n")
    with pytest.raises(AnnotationError, match=r"train_labels\.csv: missing column\(s\) xmin, ymin, xmax, ymax"):
        load_plantdoc(tmp_path)
    labels.write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,32,32,spot,1,1,9,9\na.jpg,32,32,spot,x,1\n"
    )
    with pytest.raises(AnnotationError, match=r"train_labels\.csv line 3: xmin is not a number: 'x'"):
        load_plantdoc(tmp_path, strict=True)
    (record,), report = load_plantdoc(tmp_path)
    assert len(record.boxes) == 1 and report.skipped[0].item == "train_labels.csv line 3"


def test_coco_json_reads_like_the_voc_files(sample_root: Path, tmp_path: Path) -> None:
    records, _ = load_plantdoc(sample_root, split="test")
    class_map = build_class_map(records)
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_map.names)],
    }
    for image_id, record in enumerate(records, start=1):
        coco["images"].append(
            {"id": image_id, "file_name": record.name, "width": record.width, "height": record.height}
        )
        for box in record.boxes:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": class_map.id_of(box.label) + 1,
                    "bbox": [box.xmin, box.ymin, box.xmax - box.xmin, box.ymax - box.ymin],
                    "iscrowd": 0,
                }
            )
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    from_coco, report = read_coco(path, sample_root / "TEST", strict=True)
    assert [(r.image, r.width, r.height, r.boxes) for r in from_coco] == [
        (r.image, r.width, r.height, r.boxes) for r in records
    ]
    assert report.boxes_read == sum(len(r.boxes) for r in records)

    path.write_text(json.dumps({"images": []}))
    with pytest.raises(AnnotationError, match=r"instances\.json: not a COCO detection file"):
        read_coco(path)


def test_reading_annotations_does_not_import_tensorflow() -> None:
    code = "import sys, detector.data; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- class map and split ---------------------------------------------------------------------------


def test_class_map_round_trips_through_versioned_json(tmp_path: Path) -> None:
    class_map = ClassMap(("a", "b c"))
    save_class_map(class_map, tmp_path / "classes.json")
    assert load_class_map(tmp_path / "classes.json") == class_map
    assert json.loads((tmp_path / "classes.json").read_text())["format-version"] == 1
    (tmp_path / "classes.json").write_text('{"format-version": 2, "classes": ["a"]}')
    with pytest.raises(AnnotationError, match="format-version 2"):
        load_class_map(tmp_path / "classes.json")
    with pytest.raises(UnknownClassError, match="class 'z' is not in the class map"):
        class_map.id_of("z")


def _records(names: list[str]) -> list[AnnotatedImage]:
    return [AnnotatedImage(Path("/d") / n, 10, 10, (Box("a", 0, 0, 5, 5),), n) for n in names]


def test_split_is_deterministic_order_free_and_pinned() -> None:
    names = [f"img_{i:03d}.jpg" for i in range(50)]
    records = _records(names)
    train, val = split_records(records, val_fraction=0.2, seed=0)
    assert len(val) == 10 and len(train) == 40
    assert [r.name for r in train + val] != names and sorted(r.name for r in train + val) == names
    assert [r.name for r in train] == [n for n in names if n not in {r.name for r in val}]  # input order kept

    shuffled = list(records)
    random.Random(3).shuffle(shuffled)
    assert {r.name for r in split_records(shuffled, val_fraction=0.2, seed=0)[1]} == {r.name for r in val}
    assert {r.name for r in split_records(records, val_fraction=0.2, seed=1)[1]} != {r.name for r in val}
    # Pinned: SHA-256 of "<seed>\0<name>". The same on every platform and Python; a change here
    # changes every user's validation set.
    pinned = split_records(_records(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]), val_fraction=0.5)[1]
    assert [r.name for r in pinned] == ["b.jpg", "d.jpg"]


def test_split_keeps_images_of_one_name_together_and_small_sets_get_a_validation_image() -> None:
    records = _records(["same.jpg", "same.jpg", "x.jpg", "y.jpg", "z.jpg"])
    for seed in range(10):
        train, val = split_records(records, val_fraction=0.2, seed=seed)
        assert not {r.name for r in train} & {r.name for r in val}
    assert len(split_records(_records(["a.jpg", "b.jpg"]), val_fraction=0.1)[1]) == 1
    assert split_records(_records(["a.jpg", "b.jpg"]), val_fraction=0)[1] == []
    with pytest.raises(ValueError, match="val_fraction"):
        split_records(records, val_fraction=1.0)


# -- the tf.data pipeline ----------------------------------------------------------------------------


def test_encode_boxes_pads_with_minus_one_and_keeps_the_largest() -> None:
    record = AnnotatedImage(
        Path("/d/a.jpg"), 200, 100, (Box("b", 0, 0, 10, 10), Box("a", 0, 0, 50, 50), Box("b", 0, 0, 20, 20)), "a.xml"
    )
    class_map = ClassMap(("a", "b"))
    boxes, classes = encode_boxes(record, class_map, max_boxes=4)
    assert boxes == [[0, 0, 10, 10], [0, 0, 50, 50], [0, 0, 20, 20], [-1, -1, -1, -1]]
    assert classes == [1, 0, 1, -1]
    boxes, classes = encode_boxes(record, class_map, max_boxes=2, image_size=100)
    assert boxes == [[0, 0, 25, 25], [0, 0, 10, 10]] and classes == [0, 1]
    assert letterbox_size(200, 100, 100) == (100, 50)


def test_batched_pipeline_has_keras_cv_shapes_and_aligned_boxes(sample_root: Path) -> None:
    records, _ = load_plantdoc(sample_root, split="train")
    class_map = build_class_map(records)
    dataset = make_dataset(records, class_map, image_size=96, max_boxes=6, batch_size=4)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == 3  # 9 train images
    first = batches[0]
    assert first["images"].shape == (4, 96, 96, 3) and first["images"].dtype == np.float32
    assert first["bounding_boxes"]["boxes"].shape == (4, 6, 4)
    assert first["bounding_boxes"]["classes"].shape == (4, 6)
    assert batches[-1]["images"].shape[0] == 1

    flat = [
        (image, boxes, classes)
        for batch in batches
        for image, boxes, classes in zip(batch["images"], *batch["bounding_boxes"].values(), strict=True)
    ]
    for record, (image, boxes, classes) in zip(records, flat, strict=True):
        count = len(record.boxes)
        assert (classes[count:] == -1).all() and (boxes[count:] == -1).all()
        assert (classes[:count] >= 0).all() and image.min() >= 0 and image.max() <= 255
        new_w, new_h = letterbox_size(record.width, record.height, 96)
        assert (image[new_h:, :, :] == 0).all() and (image[:, new_w:, :] == 0).all()  # padded bottom/right
        for (x0, y0, x1, y1), label in zip(boxes[:count], classes[:count], strict=True):
            red, green, blue = image[int((y0 + y1) / 2), int((x0 + x1) / 2)]  # inside every shape
            assert _colour(red, green, blue) == class_map.names[int(label)].split()[0]


def _colour(red: float, green: float, blue: float) -> str:
    if red > 150 and green > 150 and blue < 120:
        return "yellow"
    return "red" if red > max(green, blue) + 60 else "blue" if blue > max(red, green) + 60 else "other"


def test_unbatched_pipeline_keeps_each_image_size(sample_root: Path) -> None:
    records, _ = load_plantdoc(sample_root, split="test")
    examples = list(make_dataset(records, build_class_map(records), max_boxes=5).as_numpy_iterator())
    assert [e["images"].shape for e in examples] == [(r.height, r.width, 3) for r in records]
    first = examples[0]["bounding_boxes"]
    expected = [[b.xmin, b.ymin, b.xmax, b.ymax] for b in records[0].boxes]
    np.testing.assert_allclose(first["boxes"][: len(expected)], expected)


def test_pipeline_reads_real_names_and_sizes(plantdoc_root: Path) -> None:
    records, _ = load_plantdoc(plantdoc_root, split="test")
    class_map = build_class_map(records)
    batch = next(make_dataset(records, class_map, image_size=64, batch_size=len(records)).as_numpy_iterator())
    assert batch["images"].shape == (len(records), 64, 64, 3)  # %20, ?, & and 2848x2136 images included


def test_pipeline_refuses_what_it_cannot_batch_or_label(sample_root: Path) -> None:
    records, _ = load_plantdoc(sample_root, split="test")
    with pytest.raises(ValueError, match="batch_size needs image_size"):
        make_dataset(records, build_class_map(records), batch_size=2)
    with pytest.raises(UnknownClassError):
        make_dataset(records, ClassMap(("other",)))
    with pytest.raises(EmptyDatasetError):
        make_dataset([], ClassMap(("other",)))
    assert issubclass(UnknownClassError, DatasetError)
