"""TensorFlow without its start-up noise: what `make run` and `python -m detector` print is the
flow's own lines, not ``failed call to cuInit`` or "All log messages before absl::InitializeLog()".

TensorFlow's C++ side writes those straight to file descriptor 2 while it is imported and when it
first looks for devices, before ``TF_CPP_MIN_LOG_LEVEL`` is honoured for some of them. So the
import (and the device scan) run with descriptor 2 pointed at a temporary file; afterwards every
line that is not known noise is written to stderr as it came. ``-v`` or ``VERBOSE=1`` (which sets
``DETECTOR_VERBOSE=1``) leaves everything alone.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# Start-up lines of TensorFlow 2.x on a CPU machine (and a CUDA build without a GPU).
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
    r"|Could not find cuda drivers on your machine"
    r"|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc|cuda_executor\.cc.*NUMA"
)


def verbose_requested() -> bool:
    return os.environ.get("DETECTOR_VERBOSE", "").strip().lower() in {"1", "true", "yes", "on"}


def quiet_tensorflow(*, verbose: bool | None = None) -> None:
    """Import TensorFlow (once per process), dropping its known start-up lines from stderr.

    ``verbose`` (default: ``DETECTOR_VERBOSE``) imports it untouched. Other lines, and every
    error raised by the import, still come through.
    """
    if "tensorflow" in sys.modules:
        return
    if verbose if verbose is not None else verbose_requested():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        import tensorflow  # noqa: F401

        return
    # 3 also hides C++ ERROR lines logged during training ("oneDNN supports DT_INT64 only on ..."):
    # TensorFlow's real errors reach Python as exceptions, which are never hidden.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device scan is where cuInit complains
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
