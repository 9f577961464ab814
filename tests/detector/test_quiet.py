"""Quiet runs: TensorFlow's start-up noise is dropped, and comes back with DETECTOR_VERBOSE=1 (-v)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from detector.quiet import NOISE

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (
    "import sys; from detector.quiet import quiet_tensorflow; quiet_tensorflow(); import tensorflow as tf; "
    "tf.reduce_sum(tf.ones(3)).numpy(); print('own line', file=sys.stderr)"
)


def _stderr(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DETECTOR_VERBOSE")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow
def test_tensorflow_start_up_lines_are_dropped_unless_verbose() -> None:
    verbose = _stderr(DETECTOR_VERBOSE="1")
    assert NOISE.search(verbose), verbose  # this build does print start-up lines: the test can fail
    quiet = _stderr()
    assert not NOISE.search(quiet), quiet
    assert quiet.strip().splitlines() == ["own line"]
