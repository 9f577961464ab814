"""detector.sample and `python -m detector sample`: determinism, layout, counts, separable classes."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.__main__ import main
from detector.data import build_class_map, load_plantdoc
from detector.errors import SampleError
from detector.sample import CLASSES, generate_sample


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate_sample(tmp_path / "one", images=8, seed=3, size=128)
    generate_sample(tmp_path / "two", images=8, seed=3, size=128)
    generate_sample(tmp_path / "three", images=8, seed=4, size=128)
    one, two, three = (_files(tmp_path / name) for name in ("one", "two", "three"))
    assert one == two
    assert len(one) == 8 * 2 + 3  # a JPEG and an XML per image, two CSVs, sample.json
    assert one.keys() == three.keys()
    assert all(one[name] != three[name] for name in one if name.endswith(".jpg"))


def test_layout_and_counts_match_the_summary(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path / "s", images=20, seed=0, size=160)
    root = tmp_path / "s"
    assert summary.images == {"train": 15, "test": 5} and not summary.reused
    assert sorted(p.name for p in root.iterdir()) == [
        "TEST",
        "TRAIN",
        "sample.json",
        "test_labels.csv",
        "train_labels.csv",
    ]
    for split, folder in (("train", "TRAIN"), ("test", "TEST")):
        xmls = sorted((root / folder).glob("*.xml"))
        assert len(xmls) == len(list((root / folder).glob("*.jpg"))) == summary.images[split]
        objects = [obj for xml in xmls for obj in ET.parse(xml).getroot().iter("object")]
        with (root / f"{split}_labels.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(objects) == len(rows) == summary.boxes[split]
        per_image = Counter(row["filename"] for row in rows)
        assert min(per_image.values()) >= 1 and max(per_image.values()) <= 4
        assert sum(per_image.values()) / len(per_image) >= 2  # several objects per image
        assert {row["class"] for row in rows} == {spot.name for spot in CLASSES}  # every class in every split
    assert sum(summary.class_boxes.values()) == sum(summary.boxes.values())
    assert "wrote" in summary.line() and "3 classes" in summary.line()


@pytest.mark.parametrize("source", ["xml", "csv"])
def test_loader_round_trip(sample_root: Path, source: str) -> None:
    records, report = load_plantdoc(sample_root, split="train", source=source)
    assert report.boxes_clipped == report.boxes_dropped == 0 and report.skipped == []
    assert len(records) == 9 and build_class_map(records).names == tuple(sorted(spot.name for spot in CLASSES))
    for record in records:
        with Image.open(record.image) as image:
            assert image.size == (record.width, record.height) and image.mode == "RGB"
        assert max(record.width, record.height) == 128
        for box in record.boxes:
            side = min(box.xmax - box.xmin, box.ymax - box.ymin)
            assert side >= 0.15 * min(record.width, record.height)  # large enough to learn at 128 px
    from_xml, _ = load_plantdoc(sample_root, split="train", source="xml")
    assert [r.boxes for r in records] == [r.boxes for r in from_xml]


def test_objects_have_their_class_colour_and_do_not_overlap(sample_root: Path) -> None:
    records, _ = load_plantdoc(sample_root, split="train")
    expected = {spot.name: np.array(spot.colour, dtype=float) for spot in CLASSES}
    for record in records:
        pixels = np.asarray(Image.open(record.image), dtype=float)
        for box in record.boxes:
            centre = pixels[int((box.ymin + box.ymax) / 2), int((box.xmin + box.xmax) / 2)]
            distances = {name: np.abs(centre - colour).max() for name, colour in expected.items()}
            assert min(distances, key=distances.get) == box.label and distances[box.label] < 60
        for i, a in enumerate(record.boxes):
            for b in record.boxes[i + 1 :]:
                assert a.xmax <= b.xmin or b.xmax <= a.xmin or a.ymax <= b.ymin or b.ymax <= a.ymin


def test_second_call_reuses_and_new_parameters_regenerate(tmp_path: Path) -> None:
    root = tmp_path / "s"
    generate_sample(root, images=6, seed=1, size=96)
    stamp = (root / "TRAIN" / "leaf_0000.jpg").stat().st_mtime_ns
    assert generate_sample(root, images=6, seed=1, size=96).reused
    assert (root / "TRAIN" / "leaf_0000.jpg").stat().st_mtime_ns == stamp

    summary = generate_sample(root, images=4, seed=1, size=96)
    assert not summary.reused and summary.images == {"train": 3, "test": 1}
    assert len(list((root / "TRAIN").glob("*.jpg"))) == 3  # no image left over from the larger sample
    assert not list(tmp_path.glob(".s.partial*"))


def test_refuses_bad_parameters_and_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="--images must be at least 2"):
        generate_sample(tmp_path / "s", images=1)
    with pytest.raises(SampleError, match="--size must be between"):
        generate_sample(tmp_path / "s", size=16)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SampleError, match="exists and is not a sample dataset") as caught:
        generate_sample(tmp_path / "mine", images=4, size=96)
    assert "new or empty folder" in caught.value.fix
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_writes_the_sample_and_reports_mistakes_in_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert main(["sample", "--out", str(out), "--images", "4", "--seed", "2", "--size", "96"]) == 0
    assert f"wrote {out}: train 3 images" in capsys.readouterr().out
    assert _files(out) == _files(_generated(tmp_path / "lib", images=4, seed=2, size=96))

    assert main(["sample", "--out", str(out), "--images", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("detector: error: --images must be at least 2") and "Traceback" not in err


def _generated(root: Path, **options: int) -> Path:
    generate_sample(root, **options)
    return root
