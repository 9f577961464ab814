"""Deploying an export: a local server process, and a SageMaker endpoint on a local moto server.

moto 5.2 has no UpdateEndpoint; ``moto_url`` adds one to the moto it starts (the endpoint goes
Updating, then InService with the new config), so the update path runs end to end. The request
itself is checked by botocore against SageMaker's API model; AWS never sees it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from detector.__main__ import main
from detector.deploy import (
    SageMakerTarget,
    deploy_local,
    deploy_sagemaker,
    resource_name,
    wait_for_endpoint,
)
from detector.errors import DeployError, DeployTimeoutError, ExportFormatError, InputError
from detector.export import ModelArchive, package_model_tar
from tests.detector.conftest import ExportedFixture

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/plantdoc-detector:1"
BUCKET = "detector-models"
SECRET = "moto-secret-never-printed"
UPDATE_SECONDS = 0.3


def _update_endpoint(self: Any) -> Any:
    """UpdateEndpoint for moto's SageMaker: Updating now, InService with the new config soon after."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError

    backend = self.sagemaker_backend
    name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{name}'.")
    config = backend.describe_endpoint_config(config_name)
    endpoint.endpoint_status = "Updating"

    def finish() -> None:
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
        endpoint.last_modified_time = utcnow()
        endpoint.endpoint_status = "InService"

    threading.Timer(UPDATE_SECONDS, finish).start()
    return ActionResult({"EndpointArn": endpoint.arn})


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.sagemaker.responses import SageMakerResponse
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SageMakerResponse, "update_endpoint", _update_endpoint, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Credentials for moto in the environment only (no profile, no instance metadata); clients."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("DETECTOR_IMAGE_URI", "DETECTOR_ROLE_ARN", "DETECTOR_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_url)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {"s3": s3, "sm": boto3.client("sagemaker", region_name=REGION, endpoint_url=moto_url), "url": moto_url}


@pytest.fixture(scope="module")
def model_tar(exported_model: ExportedFixture, tmp_path_factory: pytest.TempPathFactory) -> ModelArchive:
    return package_model_tar(exported_model.path, tmp_path_factory.mktemp("tar") / "model.tar.gz")


def target(aws: dict[str, Any], endpoint: str, **changes: Any) -> SageMakerTarget:
    settings = {"image_uri": IMAGE, "role_arn": ROLE, "bucket": BUCKET, "region": REGION, "endpoint_url": aws["url"]}
    return SageMakerTarget(endpoint_name=endpoint, **{**settings, **changes})


def moto_endpoint(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].endpoints[name]


def test_sagemaker_deploy_creates_then_updates_then_changes_nothing(
    aws: dict[str, Any],
    exported_model: ExportedFixture,
    model_tar: ModelArchive,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="detector")
    s3, sm = aws["s3"], aws["sm"]
    first = deploy_sagemaker(model=exported_model.path, target=target(aws, "plantdoc"), timeout=30, poll_seconds=0.05)
    assert (first.action, first.uploaded, first.region) == ("created", True, REGION)

    key = first.model_data_url.removeprefix(f"s3://{BUCKET}/")
    assert key == f"detector/plantdoc/{model_tar.sha256[:16]}/model.tar.gz"
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == model_tar.sha256  # packaging is reproducible
    assert stored["Metadata"]["sha256"] == model_tar.sha256

    model = sm.describe_model(ModelName=first.model_name)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == first.model_data_url
    assert model["ExecutionRoleArn"] == ROLE
    variant = sm.describe_endpoint_config(EndpointConfigName=first.endpoint_config_name)["ProductionVariants"][0]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        first.model_name,
        "ml.m5.large",
        1,
    )
    endpoint = sm.describe_endpoint(EndpointName="plantdoc")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", first.endpoint_config_name)

    # A new image: same data (not uploaded again), new model and config, the endpoint updated in place.
    second = deploy_sagemaker(
        model=model_tar.path, target=target(aws, "plantdoc", image_uri=IMAGE + "-2"), timeout=30, poll_seconds=0.05
    )
    assert (second.action, second.uploaded) == ("updated", False)
    assert second.model_data_url == first.model_data_url and second.model_name != first.model_name
    assert sm.describe_model(ModelName=second.model_name)["PrimaryContainer"]["Image"] == IMAGE + "-2"
    endpoint = sm.describe_endpoint(EndpointName="plantdoc")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", second.endpoint_config_name)
    assert endpoint["EndpointArn"] == first.endpoint_arn

    # The same again: nothing to upload, create or update.
    models = len(sm.list_models()["Models"])
    third = deploy_sagemaker(
        model=model_tar.path, target=target(aws, "plantdoc", image_uri=IMAGE + "-2"), timeout=30, poll_seconds=0.05
    )
    assert (third.action, third.uploaded, third.model_name) == ("unchanged", False, second.model_name)
    assert len(sm.list_models()["Models"]) == models

    # New model data: uploaded under its own hash, endpoint updated.
    changed = tmp_path / "export"
    shutil.copytree(exported_model.path, changed)
    metadata = json.loads((changed / "metadata.json").read_text())
    (changed / "metadata.json").write_text(json.dumps({**metadata, "note": "retrained"}))
    fourth = deploy_sagemaker(model=changed, target=target(aws, "plantdoc"), timeout=30, poll_seconds=0.05)
    assert (fourth.action, fourth.uploaded) == ("updated", True)
    assert fourth.model_data_url != first.model_data_url
    assert sm.describe_endpoint(EndpointName="plantdoc")["EndpointConfigName"] == fourth.endpoint_config_name

    assert "creating endpoint plantdoc" in caplog.text and "updating endpoint plantdoc" in caplog.text
    assert SECRET not in caplog.text + "".join(capsys.readouterr())


def test_a_failed_endpoint_is_reported_with_its_reason(aws: dict[str, Any], model_tar: ModelArchive) -> None:
    deploy_sagemaker(model=model_tar.path, target=target(aws, "plantdoc-failed"), timeout=30, poll_seconds=0.05)
    endpoint = moto_endpoint("plantdoc-failed")
    endpoint.endpoint_status, endpoint.failure_reason = "Failed", "The primary container did not pass the ping check"
    with pytest.raises(DeployError, match="did not pass the ping check") as raised:
        deploy_sagemaker(
            model=model_tar.path, target=target(aws, "plantdoc-failed", image_uri=IMAGE + "-3"), timeout=30
        )
    assert "delete-endpoint --endpoint-name plantdoc-failed" in (raised.value.fix or "")


def test_waiting_for_an_endpoint_times_out(aws: dict[str, Any], model_tar: ModelArchive) -> None:
    deploy_sagemaker(model=model_tar.path, target=target(aws, "plantdoc-slow"), timeout=30, poll_seconds=0.05)
    moto_endpoint("plantdoc-slow").endpoint_status = "Creating"
    with pytest.raises(DeployTimeoutError, match="still Creating"):
        wait_for_endpoint(aws["sm"], "plantdoc-slow", timeout=0.3, poll_seconds=0.05)


def test_a_missing_bucket_says_how_to_make_one(aws: dict[str, Any], model_tar: ModelArchive) -> None:
    with pytest.raises(DeployError, match="NoSuchBucket") as raised:
        deploy_sagemaker(model=model_tar.path, target=target(aws, "plantdoc-b", bucket="no-such-bucket"))
    assert "aws s3 mb" in (raised.value.fix or "")
    assert "plantdoc-b" not in {e["EndpointName"] for e in aws["sm"].list_endpoints()["Endpoints"]}


def test_without_credentials_nothing_is_attempted(
    aws: dict[str, Any], model_tar: ModelArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DeployError, match="no AWS credentials") as raised:
        deploy_sagemaker(model=model_tar.path, target=target(aws, "plantdoc-nocreds"))
    assert "AWS_PROFILE" in (raised.value.fix or "")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint_name": "bad_name"}, "endpoint name"),
        ({"role_arn": "SageMakerRole"}, "not an IAM role ARN"),
        ({"image_uri": " "}, "no image URI"),
        ({"instance_count": 0}, "instance count"),
    ],
)
def test_settings_sagemaker_would_refuse_are_refused_first(
    aws: dict[str, Any], model_tar: ModelArchive, changes: dict[str, Any], message: str
) -> None:
    settings = dict(changes)
    endpoint = settings.pop("endpoint_name", "plantdoc-x")
    with pytest.raises(InputError, match=message):
        deploy_sagemaker(model=model_tar.path, target=target(aws, endpoint, **settings))


def test_resource_names_fit_sagemaker() -> None:
    name = resource_name("x" * 63, "0123456789abcdef")
    assert len(name) <= 63 and name.endswith("-0123456789ab")


def test_cli_sagemaker_deploy_and_its_errors(
    aws: dict[str, Any], model_tar: ModelArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["deploy", "--target", "sagemaker", "--model", str(model_tar.path), "--endpoint-name", "plantdoc-cli"]
    options = ["--image-uri", IMAGE, "--role-arn", ROLE, "--bucket", BUCKET, "--region", REGION]
    options += ["--endpoint-url", aws["url"], "--poll", "0.05", "--timeout", "30"]
    assert main([*argv, *options]) == 0
    assert "endpoint plantdoc-cli created in eu-west-1: InService" in capsys.readouterr().out

    assert main([*argv, "--image-uri", IMAGE, "--bucket", BUCKET]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "detector: error: --target sagemaker needs --role-arn",
        "  fix: pass them (or set DETECTOR_IMAGE_URI, DETECTOR_ROLE_ARN, DETECTOR_BUCKET)",
    ]


@pytest.mark.slow
def test_local_deploy_starts_smoke_tests_and_stops(exported_model: ExportedFixture, tmp_path: Path) -> None:
    deployment = deploy_local(model_dir=exported_model.path, port=0, log_path=tmp_path / "server.log")
    try:
        assert deployment.url.startswith("http://127.0.0.1:")
        assert deployment.smoke is not None and deployment.smoke.detections > 0
        with urllib.request.urlopen(f"{deployment.url}/ping", timeout=5) as response:
            assert response.status == 200
    finally:
        code = deployment.stop()
    assert code == 0 and deployment.process.poll() == 0
    assert "event=stopped" in (tmp_path / "server.log").read_text()


def test_local_deploy_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(ExportFormatError, match=r"no saved_model\.pb"):
        deploy_local(model_dir=tmp_path)


@pytest.mark.slow
def test_cli_local_deploy_check_stops_after_the_smoke_test(
    exported_model: ExportedFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "--target", "local", "--model", str(exported_model.path), "--port", "0", "--check"]) == 0
    out = capsys.readouterr().out
    assert "serving on http://127.0.0.1:" in out and "smoke test:" in out
