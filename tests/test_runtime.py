"""envtiers_runtime: what a task records about where it ran, read from its environment."""

from __future__ import annotations

import socket
import sys

from envtiers.runtime import describe, provenance_rows, runtime_info, scheduler_of

DIGEST = "registry.example.com/ml/detector@sha256:" + "ab" * 32


def test_the_scheduler_is_read_from_what_batch_and_kubernetes_set() -> None:
    assert scheduler_of({}) == "local"
    assert scheduler_of({"AWS_BATCH_JOB_ID": "4c1e"}) == "batch"
    assert scheduler_of({"METAFLOW_KUBERNETES_POD_NAME": "t-1"}) == "kubernetes"


def test_a_batch_task_records_its_job_image_and_interpreter() -> None:
    info = runtime_info(
        tier="image", lock_hash="sha256:" + "cd" * 32, environ={"AWS_BATCH_JOB_ID": "4c1e", "ENVTIERS_IMAGE": DIGEST}
    )
    assert info["scheduler"] == "batch"
    assert info["job_id"] == "4c1e"
    assert info["image"] == DIGEST
    assert info["hostname"] == socket.gethostname()
    assert info["python"] == sys.executable
    assert info["platform"] == "linux-64"
    line = describe(info)
    assert line.startswith("batch job 4c1e, host ")
    assert f"image {DIGEST}" in line
    (row,) = provenance_rows({"train": info})
    assert row == ["train", "batch", "4c1e", "image", "sha256:" + "cd" * 32, DIGEST, "linux-64"]


def test_a_local_task_has_no_job_nor_image_and_an_unknown_format_is_named() -> None:
    info = runtime_info(tier="pip", lock_hash=None, environ={})
    assert info["job_id"] is None and info["image"] is None
    assert "image" not in describe(info)
    assert "format 99 is not known" in describe({**info, "format-version": 99})
