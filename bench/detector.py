"""Detector benchmarks: is the input pipeline fast enough to feed training, and what does HTTP
serving add to a bare prediction?

Both use the bundled sample dataset (generated into the scratch folder) and the `default` model
configuration, the one the flow trains unless told otherwise (`make run` picks `test` for speed).
"""

from __future__ import annotations

import http.client
import io
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench.harness import REPO, BenchError, Context, say
from bench.report import Goal, Measurement, Row

MODULE = "detector"
CONFIG = "default"


def _sample(ctx: Context) -> tuple[list[Any], Any]:
    from detector.data import build_class_map, load_plantdoc
    from detector.sample import generate_sample

    root = ctx.tempdir("sample") / "sample"
    generate_sample(root)
    records, _ = load_plantdoc(root, split="train")
    return records, build_class_map(records)


def bench_pipeline(ctx: Context) -> list[Row]:
    """Seconds per image: augmented tf.data batches vs a training step of the model on them."""
    import keras
    import tensorflow as tf

    from detector.augment import augment_batches
    from detector.data import make_dataset
    from detector.model import build_model, get_config

    config = get_config(CONFIG)
    records, class_map = _sample(ctx)
    batches = augment_batches(
        make_dataset(records, class_map).repeat(),
        image_size=config.image_size,
        batch_size=config.batch_size,
        seed=0,
        max_boxes=config.max_boxes,
        jitter_scale=config.jitter_scale,
    )
    steps = ctx.reps(20, 8)
    iterator = iter(batches)
    next(iterator)  # builds the pipeline's graph

    def pipeline_once() -> float:
        started = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        return (time.perf_counter() - started) / (steps * config.batch_size)

    keras.utils.set_random_seed(0)
    model = build_model(config, num_classes=len(class_map))
    # The same augmented batches every time, already in memory: only the train step is timed.
    fixed = tf.data.Dataset.from_tensors(next(iterator)).cache().repeat(steps)
    model.fit(fixed.take(1), epochs=1, verbose=0)  # traces the train step

    def model_once() -> float:
        started = time.perf_counter()
        model.fit(fixed, epochs=1, verbose=0)
        return (time.perf_counter() - started) / (steps * config.batch_size)

    # Pipeline runs back to back, before any training: timed between training steps, the pipeline
    # would be read from batches prefetched while the model ran, and look free.
    rounds = ctx.reps(5, 3)
    pipeline = [pipeline_once() for _ in range(rounds)]
    training = [model_once() for _ in range(rounds)]
    say(f"  pipeline {1 / statistics.median(pipeline):.1f} img/s, training {1 / statistics.median(training):.1f} img/s")
    rate = 1 / statistics.median(pipeline)
    model_rate = 1 / statistics.median(training)
    return [
        Row(
            id="pipeline-vs-training",
            benchmark="pipeline",
            title=f"Input pipeline vs training step, seconds per image ({CONFIG} config, sample data)",
            envtiers=Measurement(
                "tf.data + KerasCV augmentation",
                f"augment_batches(make_dataset(sample)), {steps} batches of {config.batch_size}",
                pipeline,
            ),
            alternative=Measurement(
                "model.fit (train steps)",
                f"model.fit on one cached augmented batch, {steps} steps of {config.batch_size}",
                training,
            ),
            goal=Goal("ratio_at_least", 3.0),
            notes=[
                f"Pipeline {rate:.1f} images/s vs training {model_rate:.1f} images/s on this CPU: the "
                "ratio is how many times faster the pipeline produces images than the model consumes them.",
                "Both on the same cores, measured one after the other (not interleaved, so no batch is "
                "prefetched for free); in a real fit tf.data prefetches in parallel with the step.",
            ],
            details={"pipeline_images_per_s": round(rate, 2), "training_images_per_s": round(model_rate, 2)},
        )
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0, *, path: str = "/ping") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode} before answering {path}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"the server did not answer {path} in time")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_latency(ctx: Context) -> list[Row]:
    """`POST /invocations` with a JPEG vs `Predictor.predict` on the decoded image, one at a time."""
    import keras
    import numpy as np
    from PIL import Image

    from detector.export import export_model, load_exported
    from detector.model import build_model, get_config

    config = get_config(CONFIG)
    records, class_map = _sample(ctx)
    keras.utils.set_random_seed(0)
    model = build_model(config, num_classes=len(class_map))
    export_dir = ctx.tempdir("export") / "model"
    export_model(model, config, class_map, export_dir)
    predictor = load_exported(export_dir)

    jpeg = records[0].image.read_bytes()
    image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    count = ctx.reps(60, 20)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "detector", "serve", "--model-dir", str(export_dir), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(url, server)

        def http_once() -> float:
            # http.client, not urllib: urllib's opener machinery adds about a millisecond of client-side
            # Python per request, which is not the server's overhead.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            started = time.perf_counter()
            connection.request("POST", "/invocations", body=jpeg, headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            connection.close()
            if response.status != 200:
                raise BenchError(f"/invocations answered {response.status}")
            return elapsed

        def local_once() -> float:
            started = time.perf_counter()
            predictor.predict(image)
            return time.perf_counter() - started

        for _ in range(5):  # warm both paths
            http_once()
            local_once()
        over_http, local = [], []
        for _ in range(count):
            over_http.append(http_once())
            local.append(local_once())
    finally:
        server.terminate()
        server.wait(timeout=60)
    p99 = {"http": _percentile(over_http, 0.99), "in_process": _percentile(local, 0.99)}
    say(f"  p50 http {statistics.median(over_http) * 1e3:.1f} ms vs in-process {statistics.median(local) * 1e3:.1f} ms")
    return [
        Row(
            id="invocations-vs-predict",
            benchmark="latency",
            title=f"`POST /invocations` (JPEG) vs in-process predict on the same image, p50 ({CONFIG} config)",
            envtiers=Measurement("HTTP /invocations", f"{count} sequential POSTs of a {len(jpeg)} B JPEG", over_http),
            alternative=Measurement("Predictor.predict", f"{count} calls on the decoded array", local),
            goal=Goal("overhead_at_most", 0.10),
            notes=[
                f"p99: HTTP {p99['http'] * 1e3:.1f} ms, in-process {p99['in_process'] * 1e3:.1f} ms.",
                "HTTP includes the request, JPEG decoding in the server and JSON encoding of the reply; "
                "the model is untrained (weights seeded), so NMS sees few candidates.",
            ],
            details={"p99_s": {k: round(v, 5) for k, v in p99.items()}},
        )
    ]


BENCHMARKS = {"pipeline": bench_pipeline, "latency": bench_latency}
