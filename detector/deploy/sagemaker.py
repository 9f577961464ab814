"""The ``sagemaker`` target: a real-time endpoint created or updated with boto3.

:func:`deploy_sagemaker` uploads ``model.tar.gz`` to S3, then calls ``create_model`` /
``create_endpoint_config`` / ``create_endpoint`` (``update_endpoint`` when the endpoint exists)
and polls ``describe_endpoint`` until InService. Names are content-addressed: the S3 key carries
the archive's SHA-256, the model name a hash of image, role and data URL, the endpoint config
name a hash of model and instances. Deploying the same thing twice uploads and creates nothing;
a new model or image updates the endpoint in place. Credentials come only from boto3's chain
(environment, profile, instance role); nothing here reads or logs them. The container behind
``image_uri`` must run ``python -m detector`` as its entrypoint (SageMaker runs
``docker run IMAGE serve``); building and pushing that image is the image tier's job.

What was verified, and what was not:
- Against moto 5.2 (``moto.server.ThreadedMotoServer``; tests/detector/test_deploy.py): the S3
  upload and its key, the model's image and ModelDataUrl, the endpoint config's variant, the
  endpoint's config, a second deploy updating it, a third changing nothing, a Failed endpoint,
  a polling timeout, a missing bucket, missing credentials. moto has no UpdateEndpoint: the
  tests add one to moto (config switch, Updating then InService), so that request is checked
  against botocore's API model only, not against AWS.
- Not verified against real AWS: IAM (``iam:PassRole`` on the role, the role reading S3), ECR
  image pulls, the container passing SageMaker's health checks, real status timings (minutes),
  rollback of a failed update (handled: SageMaker keeps the old config, and this module reports
  the failure reason), quotas, and KMS/VPC options (not supported here).
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from detector.errors import DeployError, DeployTimeoutError, InputError
from detector.export import ModelArchive, package_model_tar

log = logging.getLogger(__name__)

# SageMaker's pattern for model, endpoint config and endpoint names.
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")
# Room for "-" + 12 hex digits after a name, within SageMaker's 63 characters.
_NAME_STEM = 50
_SETTLING = ("Creating", "Updating", "SystemUpdating", "RollingBack")


@dataclass(frozen=True)
class SageMakerTarget:
    """Where and how to run the endpoint. ``region`` None: boto3's (AWS_REGION, profile)."""

    endpoint_name: str
    image_uri: str
    role_arn: str
    bucket: str
    region: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    prefix: str = "detector"
    # Only for tests and private endpoints: one URL for both S3 and SageMaker.
    endpoint_url: str | None = None

    def validate(self) -> None:
        """Raises InputError naming the first setting SageMaker would refuse."""
        if not _NAME.match(self.endpoint_name):
            raise InputError(
                f"endpoint name {self.endpoint_name!r} is not valid",
                fix="use 1-63 letters, digits and hyphens, starting with a letter or digit",
            )
        if not _ROLE_ARN.match(self.role_arn):
            raise InputError(
                f"role ARN {self.role_arn!r} is not an IAM role ARN",
                fix="pass --role-arn arn:aws:iam::<account>:role/<SageMaker execution role>",
            )
        if not self.image_uri.strip():
            raise InputError(
                "no image URI", fix="pass --image-uri <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>"
            )
        if not self.bucket.strip():
            raise InputError("no S3 bucket", fix="pass --bucket <a bucket in the endpoint's region>")
        if self.instance_count < 1:
            raise InputError(f"instance count {self.instance_count} is below 1", fix="pass --instance-count 1")


@dataclass(frozen=True)
class SageMakerDeployment:
    """The endpoint and what it runs. ``action``: what this deploy did to the endpoint."""

    endpoint_name: str
    endpoint_arn: str
    endpoint_config_name: str
    model_name: str
    model_data_url: str
    region: str
    action: Literal["created", "updated", "unchanged"]
    uploaded: bool
    seconds: float


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def resource_name(stem: str, digest: str) -> str:
    """``stem-<12 hex>`` within SageMaker's 63 characters."""
    return f"{stem[:_NAME_STEM].rstrip('-')}-{digest[:12]}"


_FIXES = {
    "NoSuchBucket": "create the bucket in the endpoint's region (aws s3 mb s3://BUCKET) or pass another --bucket",
    "AccessDenied": "the credentials need s3:PutObject/GetObject on the bucket, sagemaker:Create*/Describe*/"
    "UpdateEndpoint, and iam:PassRole on the role",
    "ResourceLimitExceeded": "request a quota increase, or pick another --instance-type / --instance-count",
}
_FIXES["AccessDeniedException"] = _FIXES["AccessDenied"]


@contextmanager
def _aws(step: str) -> Iterator[None]:
    """Turn boto3's failures into DeployError with a fix; the message never carries credentials."""
    import boto3.exceptions
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise DeployError(
            f"{step}: no AWS credentials found",
            fix="set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or run where an IAM role applies",
        ) from None
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        raise DeployError(f"{step}: {code}: {message}", fix=_FIXES.get(code)) from None
    except boto3.exceptions.S3UploadFailedError as error:
        cause = error.__cause__
        code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if cause else ""
        code = code or next((c for c in _FIXES if c in str(error)), "")
        raise DeployError(f"{step}: {error}", fix=_FIXES.get(code)) from None
    except botocore.exceptions.BotoCoreError as error:
        raise DeployError(f"{step}: {error}", fix="check the region, the network and --endpoint-url") from None


def _not_found(error: Any) -> bool:
    response = getattr(error, "response", {}) or {}
    return "Could not find" in response.get("Error", {}).get("Message", "")


def _describe(call: Any, **kwargs: Any) -> dict[str, Any] | None:
    """``call(**kwargs)``, or None when SageMaker says the resource does not exist."""
    import botocore.exceptions

    try:
        return dict(call(**kwargs))
    except botocore.exceptions.ClientError as error:
        if _not_found(error):
            return None
        raise


def _archive_of(model: Path, workdir: Path) -> ModelArchive:
    model = Path(model)
    if model.is_dir():
        return package_model_tar(model, workdir / "model.tar.gz")
    if model.is_file() and model.name.endswith(".tar.gz"):
        return ModelArchive(
            path=model, sha256=hashlib.sha256(model.read_bytes()).hexdigest(), size=model.stat().st_size
        )
    raise InputError(
        f"{model} is neither an export folder nor a model.tar.gz",
        fix="pass the folder written by `python -m detector export` (or its --tar archive)",
    )


def wait_for_endpoint(client: Any, name: str, *, timeout: float, poll_seconds: float) -> dict[str, Any]:
    """Poll describe_endpoint until InService; returns its answer.

    Polls itself rather than using boto3's waiter so the timeout is ours and a failure carries
    SageMaker's FailureReason. Raises DeployError (Failed), DeployTimeoutError.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        with _aws(f"describe endpoint {name}"):
            description = client.describe_endpoint(EndpointName=name)
        status = description["EndpointStatus"]
        if status != last:
            log.info("endpoint %s: %s", name, status)
            last = status
        if status == "InService":
            return dict(description)
        if status == "Failed":
            raise DeployError(
                f"endpoint {name} failed: {description.get('FailureReason', 'no reason given')}",
                fix=f"read CloudWatch logs /aws/sagemaker/Endpoints/{name}; then "
                f"`aws sagemaker delete-endpoint --endpoint-name {name}` and deploy again",
            )
        if time.monotonic() > deadline:
            raise DeployTimeoutError(
                f"endpoint {name} is still {status} after {timeout:.0f} s",
                fix=f"wait, then check `aws sagemaker describe-endpoint --endpoint-name {name}`",
            )
        time.sleep(poll_seconds)


def deploy_sagemaker(
    *,
    model: Path,
    target: SageMakerTarget,
    timeout: float = 1800.0,
    poll_seconds: float = 15.0,
) -> SageMakerDeployment:
    """Put ``model`` (an export folder or its model.tar.gz) on ``target``'s endpoint.

    Returns the SageMakerDeployment once the endpoint is InService with the new config.
    Raises InputError for unusable settings, DeployError for a failed AWS call (with a fix),
    a Failed endpoint or an update SageMaker rolled back, DeployTimeoutError after ``timeout``.
    """
    import boto3

    target.validate()
    started = time.perf_counter()
    session = boto3.session.Session(region_name=target.region)
    region = session.region_name
    if not region:
        raise InputError("no AWS region", fix="pass --region, or set AWS_REGION (or a profile's region)")
    if session.get_credentials() is None:
        raise DeployError(
            "no AWS credentials found",
            fix="set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or run where an IAM role applies",
        )
    s3 = session.client("s3", endpoint_url=target.endpoint_url)
    sm = session.client("sagemaker", endpoint_url=target.endpoint_url)
    with tempfile.TemporaryDirectory(prefix="detector-deploy-") as workdir:
        archive = _archive_of(model, Path(workdir))
        key = f"{target.prefix.strip('/')}/{target.endpoint_name}/{archive.sha256[:16]}/model.tar.gz"
        model_data_url = f"s3://{target.bucket}/{key}"
        uploaded = _upload(s3, archive, target.bucket, key)

    model_name = resource_name(target.endpoint_name, _digest(target.image_uri, target.role_arn, model_data_url))
    with _aws(f"create model {model_name}"):
        if _describe(sm.describe_model, ModelName=model_name) is None:
            log.info("creating model %s (image %s)", model_name, target.image_uri)
            sm.create_model(
                ModelName=model_name,
                PrimaryContainer={"Image": target.image_uri, "ModelDataUrl": model_data_url},
                ExecutionRoleArn=target.role_arn,
            )
    config_name = resource_name(
        target.endpoint_name, _digest(model_name, target.instance_type, str(target.instance_count))
    )
    with _aws(f"create endpoint config {config_name}"):
        if _describe(sm.describe_endpoint_config, EndpointConfigName=config_name) is None:
            log.info("creating endpoint config %s (%d x %s)", config_name, target.instance_count, target.instance_type)
            sm.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": model_name,
                        "InitialInstanceCount": target.instance_count,
                        "InstanceType": target.instance_type,
                        "InitialVariantWeight": 1.0,
                    }
                ],
            )
    action = _create_or_update_endpoint(sm, target.endpoint_name, config_name, timeout=timeout, poll=poll_seconds)
    description = wait_for_endpoint(sm, target.endpoint_name, timeout=timeout, poll_seconds=poll_seconds)
    if description.get("EndpointConfigName") != config_name:
        raise DeployError(
            f"endpoint {target.endpoint_name} rolled back to {description.get('EndpointConfigName')}: "
            f"{description.get('FailureReason', 'no reason given')}",
            fix=f"read CloudWatch logs /aws/sagemaker/Endpoints/{target.endpoint_name}",
        )
    return SageMakerDeployment(
        endpoint_name=target.endpoint_name,
        endpoint_arn=description["EndpointArn"],
        endpoint_config_name=config_name,
        model_name=model_name,
        model_data_url=model_data_url,
        region=region,
        action=action,
        uploaded=uploaded,
        seconds=time.perf_counter() - started,
    )


def _upload(s3: Any, archive: ModelArchive, bucket: str, key: str) -> bool:
    """Upload unless the object is there already (the key holds the archive's hash). True if uploaded."""
    import botocore.exceptions

    with _aws(f"upload s3://{bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            if head.get("ContentLength") == archive.size:
                log.info("s3://%s/%s is there already", bucket, key)
                return False
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        log.info("uploading %s (%.1f MB) to s3://%s/%s", archive.path.name, archive.size / 1e6, bucket, key)
        s3.upload_file(str(archive.path), bucket, key, ExtraArgs={"Metadata": {"sha256": archive.sha256}})
    return True


def _create_or_update_endpoint(
    sm: Any, name: str, config_name: str, *, timeout: float, poll: float
) -> Literal["created", "updated", "unchanged"]:
    with _aws(f"describe endpoint {name}"):
        existing = _describe(sm.describe_endpoint, EndpointName=name)
    if existing is None:
        log.info("creating endpoint %s", name)
        with _aws(f"create endpoint {name}"):
            sm.create_endpoint(EndpointName=name, EndpointConfigName=config_name)
        return "created"
    if existing["EndpointStatus"] in _SETTLING:
        # An endpoint cannot be updated while it changes: let the running change finish first.
        existing = wait_for_endpoint(sm, name, timeout=timeout, poll_seconds=poll)
    if existing["EndpointStatus"] != "InService":
        raise DeployError(
            f"endpoint {name} is {existing['EndpointStatus']}: {existing.get('FailureReason', '')}".rstrip(": "),
            fix=f"`aws sagemaker delete-endpoint --endpoint-name {name}`, then deploy again",
        )
    if existing["EndpointConfigName"] == config_name:
        log.info("endpoint %s already runs %s", name, config_name)
        return "unchanged"
    log.info("updating endpoint %s: %s -> %s", name, existing["EndpointConfigName"], config_name)
    with _aws(f"update endpoint {name}"):
        sm.update_endpoint(EndpointName=name, EndpointConfigName=config_name)
    return "updated"
