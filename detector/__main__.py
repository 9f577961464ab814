"""``python -m detector``: parses options, calls the library, decides exit codes.

Each subcommand is a thin ``cmd_*`` function over a library function that the flow's steps and
the tests call directly. A user's mistake prints ``detector: error: ...`` and a ``fix:`` line,
never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detector import config
from detector.errors import EXIT_FAILED, EXIT_OK, DetectorError, InputError


def cmd_sample(args: argparse.Namespace) -> int:
    from detector.sample import generate_sample

    summary = generate_sample(args.out, images=args.images, seed=args.seed, size=args.size)
    print(summary.line())
    return EXIT_OK


def cmd_upload(args: argparse.Namespace) -> int:
    from detector.remote_data import upload

    upload(args.folder, args.url)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from detector.pipeline import train_on_folder

    run = train_on_folder(
        args.data, args.run_dir, config_name=args.config, epochs=args.epochs, seed=args.seed, wandb_mode=args.wandb
    )
    print(
        f"trained {run.config_name} on {args.data} in {run.seconds:.0f} s (W&B {run.wandb_mode}); "
        f"weights {run.weights}, classes {', '.join(run.class_names)}"
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector.pipeline import evaluate_run

    result = evaluate_run(args.run_dir, args.data, wandb_mode=args.wandb)
    print(f"AP {result.ap:.3f}  AP50 {result.ap50:.3f}  AP75 {result.ap75:.3f}  ({result.num_images} images)")
    for name, value in result.metrics.ap_per_class.items():
        print(f"  AP[{name}] {value:.3f}")
    print(f"wrote {Path(args.run_dir) / 'eval'}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from detector.data import load_class_map
    from detector.export import export_model, model_from_weights, package_model_tar
    from detector.model import get_config

    try:
        model_config = get_config(args.config, **_decoder_overrides(args))
    except KeyError as error:
        raise InputError(str(error.args[0]), fix="pass --config test, default or full") from None
    class_map = load_class_map(args.class_map)
    model = model_from_weights(model_config, class_map, args.weights)
    exported = export_model(model, model_config, class_map, args.out, overwrite=args.overwrite)
    print(f"exported {model_config.name} ({len(class_map)} classes) to {exported.path}")
    if args.tar:
        archive = package_model_tar(exported.path, args.tar)
        print(f"packaged {archive.path} ({archive.size / 1e6:.1f} MB, sha256 {archive.sha256[:16]})")
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from detector.fetch import DATASETS, fetch_dataset, terminal_progress

    source = DATASETS.get(args.dataset)
    out = args.out or config.DATA_DIR / args.dataset
    fetched = fetch_dataset(
        args.dataset,
        out=out,
        url=args.url,
        sha256=args.sha256,
        force=args.force,
        progress=None if args.quiet else terminal_progress(f"fetch {args.dataset}"),
    )
    if fetched.downloaded_bytes == 0 and fetched.resumed_from == 0:
        print(f"{fetched.path} is already fetched from {fetched.url} (sha256 {fetched.sha256})")
    else:
        resumed = f", resumed at {fetched.resumed_from:,} bytes" if fetched.resumed_from else ""
        print(f"fetched {fetched.url} into {fetched.path}{resumed}")
    if source is not None:
        print(f"licence: {source.licence}")
    if fetched.verified:
        print(f"sha256 {fetched.sha256}: verified")
    else:
        print(
            f"sha256 {fetched.sha256}: NOT verified, no digest is pinned for this archive (trust on first use). "
            f"Pin it: set sha256 of {args.dataset!r} in detector/fetch.py, or pass --sha256 {fetched.sha256}",
            file=sys.stderr,
        )
    return EXIT_OK


def _decoder_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("confidence_threshold", "iou_threshold", "max_detections")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def cmd_serve(args: argparse.Namespace) -> int:
    from detector.serve import run_server

    run_server(model_dir=args.model_dir, host=args.host, port=args.port)
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.target == "local":
        return _deploy_local(args)
    from detector.deploy import SageMakerTarget, deploy_sagemaker

    missing = [
        option
        for option, value in (("--image-uri", args.image_uri), ("--role-arn", args.role_arn), ("--bucket", args.bucket))
        if not value
    ]
    if missing:
        raise InputError(
            f"--target sagemaker needs {', '.join(missing)}",
            fix="pass them (or set DETECTOR_IMAGE_URI, DETECTOR_ROLE_ARN, DETECTOR_BUCKET)",
        )
    target = SageMakerTarget(
        endpoint_name=args.endpoint_name,
        image_uri=args.image_uri,
        role_arn=args.role_arn,
        bucket=args.bucket,
        region=args.region,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        prefix=args.prefix,
        endpoint_url=args.endpoint_url,
    )
    result = deploy_sagemaker(model=args.model, target=target, timeout=args.timeout or 1800.0, poll_seconds=args.poll)
    print(
        f"endpoint {result.endpoint_name} {result.action} in {result.region}: InService with {result.model_name} "
        f"({result.model_data_url})"
    )
    return EXIT_OK


def cmd_app(args: argparse.Namespace) -> int:
    from detector.app.launch import run_app

    if args.model_dir is not None and not (args.model_dir / "saved_model.pb").is_file():
        raise InputError(
            f"{args.model_dir}: no saved_model.pb: not an export folder",
            fix="pass --model-dir of `python -m detector export` (or runs/DetectorFlow/<run id>/export/model)",
        )
    run_app(host=args.host, port=args.port, run=args.run, endpoint=args.endpoint, model_dir=args.model_dir)
    return EXIT_OK


def _deploy_local(args: argparse.Namespace) -> int:
    from detector.deploy import deploy_local

    deployment = deploy_local(model_dir=args.model, host=args.host, port=args.port, start_timeout=args.timeout or 120.0)
    smoke = deployment.smoke
    print(
        f"serving on {deployment.url} (log {deployment.log_path}); smoke test: "
        f"{smoke.detections if smoke else 0} detection(s) in {1000 * (smoke.seconds if smoke else 0):.0f} ms"
    )
    if not args.check:

        def stop(signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        print("Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            deployment.process.wait()
    code = deployment.stop()
    return EXIT_OK if code == 0 else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detector", description="The PlantDoc RetinaNet detector.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser(
        "sample",
        help="write the synthetic PlantDoc-layout dataset",
        description="Write a small synthetic dataset in PlantDoc's layout (TRAIN/, TEST/, *_labels.csv).",
    )
    sample.add_argument("--out", type=Path, default=config.SAMPLE_DIR, help="folder to write (default: %(default)s)")
    sample.add_argument("--images", type=int, default=config.SAMPLE_IMAGES, help="images in both splits")
    sample.add_argument("--seed", type=int, default=config.SAMPLE_SEED, help="same seed, same bytes")
    sample.add_argument("--size", type=int, default=config.SAMPLE_SIZE, help="longer image side in pixels")
    sample.set_defaults(handler=cmd_sample)
    upload = commands.add_parser(
        "upload",
        help="copy a dataset folder to S3 (for the flow's --data s3://...)",
        description="Upload a PlantDoc-layout folder to s3://bucket/prefix/ with Metaflow's S3 client "
        "(AWS settings from the environment, METAFLOW_S3_ENDPOINT_URL included).",
    )
    upload.add_argument("folder", type=Path, help="the dataset folder")
    upload.add_argument("url", help="s3://bucket/prefix/")
    upload.set_defaults(handler=cmd_upload)
    train = commands.add_parser(
        "train",
        help="train a RetinaNet on a PlantDoc-layout folder",
        description="Train on the TRAIN split (validation split off by file-name hash); writes the class map, "
        "run.json and checkpoints into --run-dir. W&B logs offline unless WANDB_API_KEY is set.",
    )
    train.add_argument("--data", type=Path, default=config.SAMPLE_DIR, help="dataset folder (default: %(default)s)")
    train.add_argument("--run-dir", type=Path, required=True, help="where the run is written")
    train.add_argument("--config", default="default", help="model configuration: test, default or full")
    train.add_argument("--epochs", type=int, help="default: the configuration's")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--wandb", choices=("auto", "online", "offline", "disabled"), default="auto")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="COCO mAP of a training run on the TEST split",
        description="Predict on the TEST split with the run's weights and score with pycocotools: AP, AP50, "
        "AP75, AP per class; writes eval.json, pr_curve.png and sample images to RUN_DIR/eval.",
    )
    evaluate.add_argument("--run-dir", type=Path, required=True, help="a folder written by `train`")
    evaluate.add_argument("--data", type=Path, help="dataset folder (default: the one the run trained on)")
    evaluate.add_argument("--wandb", choices=("auto", "online", "offline", "disabled"), default="auto")
    evaluate.set_defaults(handler=cmd_evaluate)
    _add_fetch(commands)
    _add_export(commands)
    _add_serve(commands)
    _add_deploy(commands)
    _add_app(commands)
    return parser


def _add_fetch(commands: Any) -> None:
    fetch = commands.add_parser(
        "fetch",
        help="download a public dataset at a pinned commit (plantdoc), verify and unpack it",
        description="Download the dataset's GitHub archive at its pinned commit (resuming a partial download), "
        "check its sha256, unpack it into a temporary folder and rename that to --out.",
    )
    fetch.add_argument("dataset", choices=("plantdoc",), help="the dataset")
    fetch.add_argument("--out", type=Path, help=f"folder to create (default: {config.DATA_DIR}/DATASET)")
    fetch.add_argument("--url", help="download from this mirror of the archive instead")
    fetch.add_argument("--sha256", help="the archive digest to require (default: the pinned one, if any)")
    fetch.add_argument("--force", action="store_true", help="replace an --out that holds something else")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(handler=cmd_fetch)


def _add_app(commands: Any) -> None:
    app = commands.add_parser(
        "app",
        help="the front end: upload photos, see detections, compare runs (Streamlit)",
        description="Serve the Streamlit page. It starts on the latest successful DetectorFlow run unless "
        "--run, --endpoint or --model-dir says otherwise; the page can switch between them.",
    )
    app.add_argument("--host", default=config.APP_HOST, help="address to listen on (default: %(default)s)")
    app.add_argument("--port", type=int, default=config.APP_PORT, help="port (default: %(default)s)")
    start = app.add_mutually_exclusive_group()
    start.add_argument("--run", help="start on this DetectorFlow run id")
    start.add_argument("--endpoint", help="start on this endpoint URL (SageMaker's /invocations contract)")
    start.add_argument("--model-dir", type=Path, help="start on this export folder (e.g. /opt/ml/model)")
    app.set_defaults(handler=cmd_app)


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write trained weights as a SavedModel that serves detections (and model.tar.gz)",
        description="Build the model of --config, load --weights and write a SavedModel whose 'serve' "
        "signature resizes, predicts, decodes and suppresses, plus metadata.json.",
    )
    export.add_argument("--weights", type=Path, required=True, help="a .weights.h5 file from a training run")
    export.add_argument("--class-map", type=Path, required=True, help="the class map saved with those weights")
    export.add_argument("--config", default="default", help="model configuration: test, default or full")
    export.add_argument("--out", type=Path, required=True, help="export folder to write (must be new or empty)")
    export.add_argument("--tar", type=Path, help="also write SageMaker's model.tar.gz here")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    export.add_argument("--confidence-threshold", type=float, help="drop detections scoring below this")
    export.add_argument("--iou-threshold", type=float, help="non-max suppression overlap")
    export.add_argument("--max-detections", type=int, help="detections per image at most")
    export.set_defaults(handler=cmd_export)


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve an export over HTTP (SageMaker's /ping and /invocations)",
        description="Serve an export: GET /ping, POST /invocations (image/jpeg, image/png, or "
        'application/json {"instances": [...]}). SIGTERM drains in-flight requests and exits 0.',
    )
    serve.add_argument(
        "--model-dir", type=Path, default=config.SAGEMAKER_MODEL_DIR, help="export folder (default: %(default)s)"
    )
    serve.add_argument("--host", default=config.SERVE_HOST, help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (default: ${config.SERVE_PORT_ENV}, else {config.SERVE_PORT}; 0 picks a free one)",
    )
    serve.set_defaults(handler=cmd_serve)


def _add_deploy(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="run an export locally or on a SageMaker endpoint",
        description="--target local: start `serve` on this machine, smoke-test it, keep it running (or stop "
        "at once with --check). --target sagemaker: upload model.tar.gz, create or update the endpoint, "
        "wait for InService. AWS credentials come from the environment or profile only.",
    )
    deploy.add_argument("--target", choices=("local", "sagemaker"), required=True)
    deploy.add_argument("--model", type=Path, required=True, help="export folder (sagemaker: or its model.tar.gz)")
    deploy.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for /ping (local, 120) or InService (sagemaker, 1800)",
    )
    local = deploy.add_argument_group("local")
    local.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    local.add_argument("--port", type=int, default=config.SERVE_PORT, help="port (default: %(default)s; 0: free)")
    local.add_argument("--check", action="store_true", help="stop the server right after the smoke test")
    aws = deploy.add_argument_group("sagemaker")
    aws.add_argument("--endpoint-name", default="plantdoc-detector", help="endpoint (default: %(default)s)")
    aws.add_argument("--image-uri", default=os.environ.get("DETECTOR_IMAGE_URI"), help="serving image in ECR")
    aws.add_argument("--role-arn", default=os.environ.get("DETECTOR_ROLE_ARN"), help="SageMaker execution role")
    aws.add_argument("--bucket", default=os.environ.get("DETECTOR_BUCKET"), help="S3 bucket for model.tar.gz")
    aws.add_argument("--prefix", default="detector", help="S3 key prefix (default: %(default)s)")
    aws.add_argument("--region", default=None, help="AWS region (default: boto3's, e.g. $AWS_REGION)")
    aws.add_argument("--instance-type", default="ml.m5.large", help="(default: %(default)s)")
    aws.add_argument("--instance-count", type=int, default=1, help="(default: %(default)s)")
    aws.add_argument("--poll", type=float, default=15.0, help="seconds between status checks")
    aws.add_argument("--endpoint-url", default=None, help="S3 and SageMaker endpoint (tests, private links)")
    deploy.set_defaults(handler=cmd_deploy)


# Commands that start TensorFlow at once (quieted before its import). `train` is not one: it reads
# and checks the data first, then quiets and imports TensorFlow itself (detector.pipeline).
_TENSORFLOW_COMMANDS = frozenset({"evaluate", "export", "serve", "deploy"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if args.verbose:
        os.environ["DETECTOR_VERBOSE"] = "1"  # the servers and flows it starts keep TensorFlow's own lines too
    if args.command in _TENSORFLOW_COMMANDS:
        from detector.quiet import quiet_tensorflow

        quiet_tensorflow(verbose=args.verbose or None)
    try:
        return int(args.handler(args))
    except DetectorError as error:
        print(error.render(), file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
