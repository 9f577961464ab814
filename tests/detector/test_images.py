"""Broken images and XML files that name another image: found at load time, named in the report.

PlantDoc is scraped from the web: its own issue tracker reports a broken image, and one of its
XML files (``TRAIN/Early-blight-example.ashx?mw=250.xml``) names ``Early-blight.jpg``.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from detector.data import load_plantdoc, read_voc_dir
from detector.errors import UnreadableImageError
from detector.images import DecodeCache
from tests.detector.test_data import _image, _voc

BOX = [("spot", (4, 4, 40, 40))]


def _jpeg(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (20, 160, 40, 0)[: len(mode)]).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _add(folder: Path, name: str, data: bytes, size: tuple[int, int] = (64, 48)) -> None:
    (folder / name).write_bytes(data)
    (folder / f"{Path(name).stem}.xml").write_text(_voc(name, size, BOX))


@pytest.fixture
def broken_dataset(sample_root: Path, tmp_path: Path) -> Path:
    """The sample plus a truncated JPEG, an HTML page, a PNG and a CMYK JPEG, all named .jpg."""
    root = tmp_path / "broken"
    shutil.copytree(sample_root, root)
    train = root / "TRAIN"
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(png, "PNG")
    _add(train, "truncated.jpg", _jpeg((640, 480))[:3000], (640, 480))
    _add(train, "page.jpg", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>")
    _add(train, "really-png.jpg", png.getvalue())
    _add(train, "cmyk.jpg", _jpeg((64, 48), "CMYK"))
    return root


def test_broken_images_are_dropped_and_named_and_the_rest_kept(broken_dataset: Path) -> None:
    records, report = load_plantdoc(broken_dataset, split="train")
    names = {r.name for r in records}
    assert {"really-png.jpg", "cmyk.jpg"} <= names
    assert not {"truncated.jpg", "page.jpg"} & names
    reasons = {s.item: s.reason for s in report.unreadable}
    assert set(reasons) == {"truncated.jpg", "page.jpg"}
    assert "does not decode" in reasons["truncated.jpg"] and "truncated" in reasons["truncated.jpg"]
    assert "an HTML page" in reasons["page.jpg"]
    assert "dropped 2 unreadable image(s): page.jpg, truncated.jpg" in report.summary()


def test_strict_loading_names_the_broken_image(broken_dataset: Path) -> None:
    with pytest.raises(UnreadableImageError) as caught:
        load_plantdoc(broken_dataset, split="train", strict=True)
    assert "page.jpg: not a readable image (not an image (an HTML page))" in caught.value.headline


def test_decoding_is_cached_by_size_and_mtime(broken_dataset: Path, tmp_path: Path) -> None:
    cache_file = tmp_path / "cache" / "decoded.json"
    folder = broken_dataset / "TRAIN"
    _, first = read_voc_dir(folder, decode=DecodeCache(cache_file))
    assert first.images_decoded == first.images + len(first.unreadable) > 0
    _, second = read_voc_dir(folder, decode=DecodeCache(cache_file))
    assert second.images_decoded == 0 and second.summary() == first.summary()
    # A file repaired in place (new bytes, new mtime) is decoded again, and now kept.
    (folder / "truncated.jpg").write_bytes(_jpeg((640, 480)))
    stat = (folder / "truncated.jpg").stat()
    os.utime(folder / "truncated.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    records, third = read_voc_dir(folder, decode=DecodeCache(cache_file))
    assert third.images_decoded == 1
    assert "truncated.jpg" in {r.name for r in records} and len(third.unreadable) == 1


@pytest.mark.slow
def test_training_runs_on_a_dataset_with_broken_images(broken_dataset: Path, tmp_path: Path) -> None:
    from detector.pipeline import train_on_folder

    run = train_on_folder(broken_dataset, tmp_path / "run", config_name="test", epochs=1, wandb_mode="disabled")
    assert run.weights.is_file()
    assert len(run.history["loss"]) == 1
    assert {"truncated.jpg", "page.jpg"} == {s.item for s in run.report.unreadable}


# -- XML pairing ---------------------------------------------------------------------------------


def test_boxes_go_to_the_image_beside_the_xml_and_a_disagreeing_filename_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "Early-blight.jpg", (800, 600))
    (folder / "Early-blight.xml").write_text(_voc("Early-blight.jpg", (800, 600), [("blight", (10, 10, 400, 300))]))
    beside = "Early-blight-example.ashx?mw=250.jpg"
    _image(folder / beside, (250, 166))
    xml = "Early-blight-example.ashx?mw=250.xml"
    (folder / xml).write_text(_voc("Early-blight.jpg", (250, 166), [("blight", (5, 5, 100, 80))]))
    records, report = read_voc_dir(folder, strict=True)
    by_xml = {r.annotation: r for r in records}
    assert by_xml[xml].image == folder / beside
    assert by_xml[xml].boxes[0].xmax == 100  # sizes agree: not rescaled
    assert by_xml["Early-blight.xml"].boxes[0].xmax == 400
    assert report.images_rescaled == 0 and report.rescaled == []
    assert report.name_mismatches == [f"{xml}: <filename> is Early-blight.jpg; boxes go to {beside} beside it"]


def test_without_the_image_beside_it_an_xml_may_not_take_another_xmls_image(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "Early-blight.jpg", (800, 600))
    (folder / "Early-blight.xml").write_text(_voc("Early-blight.jpg", (800, 600), [("blight", (10, 10, 400, 300))]))
    xml = "Early-blight-example.ashx?mw=250.xml"
    (folder / xml).write_text(_voc("Early-blight.jpg", (250, 166), [("blight", (5, 5, 100, 80))]))
    records, report = read_voc_dir(folder)
    assert [r.annotation for r in records] == ["Early-blight.xml"]
    assert records[0].boxes[0].xmax == 400  # not rescaled by the other XML's stated size
    assert [s.item for s in report.skipped] == [xml]
    assert "Early-blight.jpg has an XML of its own" in report.skipped[0].reason


def test_without_the_image_beside_it_the_filename_is_followed_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "TRAIN"
    _image(folder / "photo.jpg", (500, 250))
    (folder / "renamed.xml").write_text(_voc("photo.jpg", (250, 125), [("spot", (10, 10, 50, 50))]))
    (record,), report = read_voc_dir(folder, strict=True)
    assert record.image == folder / "photo.jpg"
    assert record.boxes[0].xmax == 100  # annotated at half the size: rescaled, and named
    assert report.rescaled == ["renamed.xml: photo.jpg, annotated 250x125, image 500x250"]
    assert report.name_mismatches == ["renamed.xml: no image beside it; boxes go to photo.jpg, named in it"]
