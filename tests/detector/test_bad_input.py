"""Datasets the detector cannot use: one table, every case through both ways a user meets them.

Each case breaks a copy of a small valid dataset (PlantDoc layout) one way. Through
``python -m detector train --data`` it must exit 2 with exactly one ``detector: error:`` line,
then a ``fix:`` line, no traceback, nothing written (the run folder is not created, the data
is untouched). Through the flow's ``start`` step (``flow_support.check_data``) it must stop
the run with the same headline and a fix; one case runs the real flow to show Metaflow prints
it without a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector import config
from detector.sample import generate_sample
from tests.flows.support import DETECTOR_FLOW, run_flow


def _xmls(root: Path, split: str = "TRAIN") -> list[Path]:
    return sorted((root / split).glob("*.xml"))


def _images(root: Path, split: str = "TRAIN") -> list[Path]:
    return sorted((root / split).glob("*.jpg"))


def _csv_only(root: Path) -> Path:
    """Keep the TRAIN images but read boxes from train_labels.csv (no XML left)."""
    for xml in _xmls(root):
        xml.unlink()
    return root / "train_labels.csv"


def _edit_xmls(root: Path, old: str, new: str) -> None:
    for xml in _xmls(root):
        text = xml.read_text()
        assert old in text, f"{old!r} is not in {xml}"
        xml.write_text(text.replace(old, new))


def _sub_xmls(root: Path, pattern: str, replacement: str) -> None:
    for xml in _xmls(root):
        xml.write_text(re.sub(pattern, replacement, xml.read_text()))


def _write_csv(root: Path, text: str) -> None:
    _csv_only(root).write_text(text)


def _rows(root: Path, transform: Callable[[list[str]], list[str]]) -> None:
    path = _csv_only(root)
    header, *rows = path.read_text().splitlines()
    path.write_text("\n".join([header, *(",".join(transform(r.split(","))) for r in rows)]) + "\n")


def _replace_folder(root: Path) -> None:
    shutil.rmtree(root)
    root.write_text("not a folder\n")


def _empty_folder(root: Path) -> None:
    shutil.rmtree(root)
    root.mkdir()


def _strip_train(root: Path) -> None:
    for path in (root / "TRAIN").iterdir():
        path.unlink()
    (root / "train_labels.csv").unlink()


def _csv_is_folder(root: Path) -> None:
    _csv_only(root).unlink()
    (root / "train_labels.csv").mkdir()


def _empty_test_split(root: Path) -> None:
    for path in (root / "TEST").iterdir():
        path.unlink()
    (root / "test_labels.csv").unlink()


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink()


def _overwrite_all(paths: list[Path], data: bytes) -> None:
    for path in paths:
        path.write_bytes(data)


@dataclass(frozen=True)
class Case:
    breaks: Callable[[Path], Any]
    message: str  # in the error headline
    train_split: bool = True  # False: only the TEST split is broken (the flow reads it; `train` does not)


CASES: dict[str, Case] = {
    "missing data folder": Case(shutil.rmtree, "no such dataset folder"),
    "data path is a file": Case(_replace_folder, "no such dataset folder"),
    "empty data folder": Case(_empty_folder, "no TRAIN/*.xml and no train_labels.csv"),
    "TRAIN without annotations": Case(_strip_train, "no TRAIN/*.xml and no train_labels.csv"),
    "labels CSV is a folder": Case(_csv_is_folder, "no TRAIN/*.xml and no train_labels.csv"),
    "labels CSV without a column": Case(
        lambda r: _write_csv(r, "filename,width,height,xmin,ymin,xmax,ymax\na.jpg,1,1,0,0,1,1\n"),
        "missing column(s) class in the header",
    ),
    "labels CSV with a renamed column": Case(
        lambda r: _write_csv(r, "filename,width,height,label,xmin,ymin,xmax,ymax\n"),
        "missing column(s) class in the header",
    ),
    "labels CSV not UTF-8": Case(
        lambda r: _csv_only(r).write_bytes(b"filename,width,height,class,xmin,ymin,xmax,ymax\n\xff\xfe,1\n"),
        "not readable as CSV",
    ),
    "labels CSV that is empty": Case(lambda r: _write_csv(r, ""), "missing column(s) filename"),
    "labels CSV with only a header": Case(
        lambda r: _write_csv(r, ",".join(config.CSV_COLUMNS) + "\n"), "no usable image in the train split"
    ),
    "labels CSV with non-numeric corners": Case(
        lambda r: _rows(r, lambda row: [*row[:4], "left", *row[5:]]), "xmin is not a number: 'left'"
    ),
    "labels CSV with empty classes": Case(
        lambda r: _rows(r, lambda row: [*row[:3], "", *row[4:]]), "empty filename or class"
    ),
    "labels CSV naming missing images": Case(lambda r: (_csv_only(r), _unlink_all(_images(r))), "no image for it in"),
    "VOC XML not well-formed": Case(
        lambda r: [x.write_text(x.read_text()[:200]) for x in _xmls(r)], "not readable as Pascal VOC XML"
    ),
    "VOC XML with another root": Case(
        lambda r: _edit_xmls(r, "annotation>", "labels>"), "expected an <annotation> root element, found <labels>"
    ),
    "VOC XML object without a bndbox": Case(lambda r: _edit_xmls(r, "bndbox>", "box>"), "has no <bndbox>"),
    "VOC XML object without a name": Case(
        lambda r: (_edit_xmls(r, "<name>", "<label>"), _edit_xmls(r, "</name>", "</label>")), "has no <name>"
    ),
    "VOC XML with a non-numeric corner": Case(
        lambda r: _sub_xmls(r, r"<xmin>[^<]*</xmin>", "<xmin>n/a</xmin>"), "<xmin> is not a number: 'n/a'"
    ),
    "VOC XML naming missing images": Case(lambda r: _unlink_all(_images(r)), "no image for it in"),
    "images that are text": Case(lambda r: _overwrite_all(_images(r), b"<html>404</html>"), "not a readable image"),
    "images that are empty files": Case(lambda r: _overwrite_all(_images(r), b""), "not a readable image"),
    "images cut short": Case(lambda r: [p.write_bytes(p.read_bytes()[:2]) for p in _images(r)], "not a readable image"),
    "empty TEST split": Case(_empty_test_split, "no TEST/*.xml and no test_labels.csv", train_split=False),
    "TEST images missing": Case(
        lambda r: _unlink_all(_images(r, "TEST")), "no usable image in the test split", train_split=False
    ),
}


@pytest.fixture(scope="module")
def valid_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("valid") / "data"
    generate_sample(root, images=6, seed=3, size=64)
    return root


def _broken(valid: Path, tmp_path: Path, case: Case) -> Path:
    root = tmp_path / "data"
    shutil.copytree(valid, root)
    case.breaks(root)
    return root


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (and ``root`` itself) with size, mtime and mode."""
    if not root.exists():
        return {}
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {str(p.relative_to(root.parent)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode) for p in paths}


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.train_split])
def test_the_cli_names_the_problem_and_the_fix(name: str, valid_dataset: Path, tmp_path: Path) -> None:
    case = CASES[name]
    data = _broken(valid_dataset, tmp_path, case)
    run_dir = tmp_path / "runs" / "r1"
    before = _tree(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "detector", "train", "--data", str(data), "--run-dir", str(run_dir), "--config", "test"],
        cwd=config.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    lines = done.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("detector: error:")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1, done.stderr
    assert case.message in lines[errors[0]], done.stderr
    assert errors[0] + 1 < len(lines) and lines[errors[0] + 1].startswith("  fix: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert _tree(tmp_path) == before, "the failed command wrote or changed files"
    assert not run_dir.exists()


def _flow_support() -> Any:
    spec = importlib.util.spec_from_file_location("flow_support", DETECTOR_FLOW.parent / "flow_support.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(CASES))
def test_the_flows_start_step_stops_with_the_problem_and_the_fix(
    name: str, valid_dataset: Path, tmp_path: Path
) -> None:
    flow_support = _flow_support()
    data = _broken(valid_dataset, tmp_path, CASES[name])
    before = _tree(tmp_path)
    with pytest.raises(flow_support.FlowInputError) as raised:
        flow_support.check_data(str(data))
    message = str(raised.value)
    assert f"the dataset at {data} is not usable" in message
    assert CASES[name].message in message
    assert "\n    fix: " in message
    assert _tree(tmp_path) == before


@pytest.mark.slow
def test_a_real_flow_run_prints_it_without_a_traceback(valid_dataset: Path, tmp_path: Path) -> None:
    data = _broken(valid_dataset, tmp_path, CASES["VOC XML not well-formed"])
    done = run_flow(
        DETECTOR_FLOW, ["--environment=local", "run", "--data", str(data), "--wandb-mode", "disabled"], cwd=tmp_path
    )
    assert done.returncode != 0
    assert "not readable as Pascal VOC XML" in done.stdout
    assert "fix: " in done.stdout
    assert "Traceback" not in done.stdout
    assert "/augment_data_train_model/" not in done.stdout
