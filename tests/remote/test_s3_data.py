"""Datasets on S3 (the local AWS's S3): `python -m detector upload` puts a folder there, and the
flow's data_folder() downloads it once per task with a progress line; an empty prefix is a clear
error with the upload command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.support import flow_env
from tests.remote.support import LocalAws
from tests.support import REPO_ROOT

pytestmark = pytest.mark.docker


def python(code_or_args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code_or_args],
        env=flow_env({**env, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'flows'}"}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_upload_then_each_task_downloads_the_dataset_once(local_aws: LocalAws, tmp_path: Path) -> None:
    env = local_aws.env()
    folder = tmp_path / "dataset"
    (folder / "TRAIN").mkdir(parents=True)
    (folder / "TEST").mkdir()
    (folder / "TRAIN" / "leaf.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "TEST" / "leaf2.jpg").write_bytes(b"\xff\xd8 another")
    (folder / "train_labels.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n")
    url = env["METAFLOW_DATATOOLS_S3ROOT"] + "/plantdoc/"
    done = python(["-m", "detector", "upload", str(folder), url], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "uploaded 3 files" in done.stdout
    code = (
        "from flow_support import data_folder\n"
        f"first = data_folder({url!r}); second = data_folder({url!r})\n"
        "print('FOLDER', first, first == second)\n"
        "print('FILES', sorted(str(p.relative_to(first)) for p in first.rglob('*') if p.is_file()))\n"
        "print('BYTES', (first / 'TRAIN' / 'leaf.jpg').read_bytes())\n"
    )
    done = python(["-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("data: downloading 3 files") == 1  # once per process, not per call
    assert "FOLDER" in done.stdout and " True" in done.stdout
    assert "FILES ['TEST/leaf2.jpg', 'TRAIN/leaf.jpg', 'train_labels.csv']" in done.stdout
    assert "BYTES b'\\xff\\xd8 not really a jpeg'" in done.stdout


def test_an_empty_prefix_says_how_to_upload(local_aws: LocalAws, tmp_path: Path) -> None:
    env = local_aws.env()
    url = env["METAFLOW_DATATOOLS_S3ROOT"] + "/nothing-here/"
    done = python(["-c", f"from flow_support import data_folder; data_folder({url!r})"], env, tmp_path)
    assert done.returncode != 0
    assert f"no dataset at {url}" in done.stderr
    assert f"python -m detector upload DIR {url}" in done.stderr
