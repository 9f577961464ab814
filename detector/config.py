"""Every path and default of the detector package, in one place.

Paths derive from the project root (the checkout) unless an environment variable moves them;
command-line options override both. Extend this module rather than scattering constants.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# `/data/` is git-ignored: generated and downloaded datasets live there.
DATA_DIR = Path(os.environ.get("DETECTOR_DATA_DIR", PROJECT_ROOT / "data"))


def cache_dir() -> Path:
    """Where the detector caches what it can recompute (decode checks): $DETECTOR_CACHE_DIR, else
    $XDG_CACHE_HOME/detector, else ~/.cache/detector. Read at call time, so tests can move it."""
    if os.environ.get("DETECTOR_CACHE_DIR"):
        return Path(os.environ["DETECTOR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "detector"


# The synthetic PlantDoc-layout dataset that `make run` trains on by default.
SAMPLE_DIR = DATA_DIR / "sample"

# PlantDoc's object-detection release: one folder and one CSV per split.
SPLIT_DIRS = {"train": "TRAIN", "test": "TEST"}
LABEL_CSVS = {"train": "train_labels.csv", "test": "test_labels.csv"}
CSV_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")

# What KerasCV's RetinaNet is given: xyxy pixel boxes, dense, padded with -1.
BOX_FORMAT = "xyxy"
PAD_VALUE = -1
# The keras-cv Pascal VOC recipe pads to 32; PlantDoc's busiest image has 42 boxes, so the
# pipeline keeps the largest 32 of those (and says so in the log).
MAX_BOXES = 32

# Train/validation split of PlantDoc's TRAIN folder: by a hash of the image file name.
VAL_FRACTION = 0.2
SPLIT_SEED = 0

# The sample dataset (detector/sample.py).
SAMPLE_SEED = 0
SAMPLE_IMAGES = 80
SAMPLE_SIZE = 256
SAMPLE_TEST_FRACTION = 0.25

# Serving (detector/serve.py): SageMaker's container contract.
# SageMaker extracts model.tar.gz here and runs `docker run IMAGE serve`.
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
SERVE_HOST = "0.0.0.0"
SERVE_PORT = 8080
# SageMaker sets this when the container must listen elsewhere than 8080.
SERVE_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
# InvokeEndpoint's payload limit: larger requests never reach a real endpoint.
MAX_REQUEST_BYTES = 6 * 1024 * 1024
# Decoded images above this many pixels are refused (a small PNG can claim gigapixels).
MAX_IMAGE_PIXELS = 40_000_000
# SageMaker sends SIGKILL 30 s after SIGTERM: in-flight requests get this long to finish.
DRAIN_SECONDS = 25.0
# Images of one request together: a 6 MiB JSON can carry many small PNGs that each claim a
# large size, and each decodes to 3 bytes a pixel.
MAX_REQUEST_PIXELS = 40_000_000
# TF-Serving JSON is at most {"instances": [image [row [pixel [channel]]]]}: 5 levels. Deeper
# bodies are refused before they are parsed (the parser would recurse ~1000 levels, then fail).
MAX_JSON_DEPTH = 8
# The server's settings, read from the environment (detector/serve/settings.py documents each).
SERVE_WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
SERVE_TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
SERVE_LOG_LEVEL_ENV = "SAGEMAKER_CONTAINER_LOG_LEVEL"
SERVE_QUEUE_ENV = "DETECTOR_SERVER_MAX_QUEUE"
SERVE_BACKLOG_ENV = "DETECTOR_SERVER_BACKLOG"
# SageMaker's invocation timeout: a request is answered within this many seconds, or refused.
SERVE_TIMEOUT = 60
# Requests admitted per worker (running or waiting for the model); more get 503 + Retry-After.
SERVE_MAX_QUEUE = 16
# The listen backlog: connections the kernel holds until a worker accepts them (capped by
# net.core.somaxconn, 4096 on current kernels).
SERVE_BACKLOG = 2048
# Idle keep-alive connections are closed after this long (longer than a load balancer's 60 s idle
# timeout, so the balancer closes first and never reuses a connection being closed).
SERVE_KEEP_ALIVE = 65

# The front end (detector/app): `make app`, `docker run IMAGE app`.
APP_HOST = "127.0.0.1"
APP_PORT = 8501
# Exports rebuilt from a run's artifacts (a run trained elsewhere) are kept here between sessions.
APP_CACHE_DIR = Path(os.environ.get("DETECTOR_APP_CACHE_DIR", Path.home() / ".cache" / "detector" / "app"))
# The flow whose runs the page lists (the Client API's name for flows/detector_flow.py).
FLOW_NAME = "DetectorFlow"
