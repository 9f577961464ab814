"""Remote wiring, verified offline: the detector flow compiled for Argo Workflows and for AWS Step
Functions / Batch, with a local moto server answering S3 (code package), Batch, IAM and EC2.

Nothing runs remotely; the assertions read what the schedulers would be given: the GPU request,
the image, and the bootstrap that rebuilds the env from the lockfiles shipped in the code package.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows.support import DETECTOR_FLOW, copy_project, run_flow

REGION = "us-east-1"
BUCKET = "envtiers-flows"
SECRET = "moto-secret-must-not-leak"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def aws(moto_url: str) -> dict[str, str]:
    """A bucket for the code package, and a Batch job queue on a managed compute environment."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="moto-key", aws_secret_access_key=SECRET, region_name=REGION)
    session.client("s3", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
    iam = session.client("iam", endpoint_url=moto_url)
    role = iam.create_role(RoleName="metaflow-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="metaflow-ecs")["InstanceProfile"]["Arn"]
    ec2 = session.client("ec2", endpoint_url=moto_url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    batch = session.client("batch", endpoint_url=moto_url)
    compute = batch.create_compute_environment(
        computeEnvironmentName="gpu-compute",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role,
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 16,
            "desiredvCpus": 0,
            "instanceTypes": ["optimal"],
            "subnets": [subnet],
            "securityGroupIds": [group],
            "instanceRole": profile,
        },
    )
    batch.create_job_queue(
        jobQueueName="gpu-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute["computeEnvironmentArn"]}],
    )
    return {
        "AWS_ACCESS_KEY_ID": "moto-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_BATCH": moto_url,
        "AWS_ENDPOINT_URL_SFN": moto_url,
        "METAFLOW_S3_ENDPOINT_URL": moto_url,
        "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
        "METAFLOW_KUBERNETES_NAMESPACE": "ml",
        "METAFLOW_BATCH_JOB_QUEUE": "gpu-queue",
        "METAFLOW_ECS_S3_ACCESS_IAM_ROLE": role,
        "METAFLOW_SFN_IAM_ROLE": role,
        "METAFLOW_SFN_DYNAMO_DB_TABLE": "metaflow-sfn",
        "moto_url": moto_url,
    }


def compile_flow(flow: Path, tier: str, scheduler: str, aws: dict[str, str], cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in aws.items() if k.isupper()}
    done = run_flow(
        flow, [f"--environment=envtiers-{tier}", "--datastore=s3", scheduler, "create", "--only-json"], cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert SECRET not in done.stdout
    return json.loads(done.stdout[done.stdout.index("{") :])


def argo_container(workflow: dict[str, Any], step: str) -> dict[str, Any]:
    template = next(t for t in workflow["spec"]["templates"] if t["name"] == step.replace("_", "-"))
    return template["container"]


def moto_client(service: str, aws: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=aws["moto_url"],
        region_name=REGION,
        aws_access_key_id="moto-key",
        aws_secret_access_key=SECRET,
    )


def code_package(aws: dict[str, str], command: str) -> tarfile.TarFile:

    key = re.search(rf'download_file\(\\?"{BUCKET}\\?", \\?"([^"\\]+)', command)
    assert key, "the task does not download a code package"
    body = moto_client("s3", aws).get_object(Bucket=BUCKET, Key=key.group(1))["Body"].read()
    return tarfile.open(fileobj=io.BytesIO(body))


def test_argo_pip_tier_requests_a_gpu_and_bootstraps_from_the_lockfile(aws: dict[str, str], tmp_path: Path) -> None:
    workflow = compile_flow(DETECTOR_FLOW, "pip", "argo-workflows", aws, tmp_path)
    train = argo_container(workflow, "augment_data_train_model")
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert train["resources"]["requests"]["cpu"] == "4.0"
    command = " ".join(train["command"] + (train.get("args") or []))
    assert "--require-hashes --target .envtiers/tools -r lockfiles/tools.txt" in command
    assert "python -m envtiers --project . env create --tier pip --platform linux-64 --target .envtiers/env" in command
    assert ".envtiers/env/bin/python -s detector_flow.py" in command
    assert "--environment=envtiers-pip" in command
    # Steps without @resources(gpu) ask for none.
    assert "nvidia.com/gpu" not in json.dumps(argo_container(workflow, "evaluate_model")["resources"])
    # The lock the bootstrap reads travels in the code package, byte for byte.
    with code_package(aws, command) as package:
        names = package.getnames()
        for name in (
            "lockfiles/pip/linux-64.txt",
            "lockfiles/tools.txt",
            "envs/tiers.toml",
            "envtiers/tiers.py",
            "detector/pipeline.py",
            "detector_flow.py",
        ):
            assert name in names
        shipped = package.extractfile("lockfiles/pip/linux-64.txt").read()  # type: ignore[union-attr]
    assert shipped == (DETECTOR_FLOW.parents[1] / "lockfiles" / "pip" / "linux-64.txt").read_bytes()
    assert any(name.startswith(".mf_code/metaflow_extensions/envtiers/") for name in names)


def test_argo_gpu_request_is_configurable(aws: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in aws.items() if k.isupper()}
    done = run_flow(
        DETECTOR_FLOW,
        [
            "--environment=envtiers-pip",
            "--datastore=s3",
            "--config-value",
            "compute",
            '{"train_gpu": 4, "train_cpu": 16, "train_memory": 60000}',
            "argo-workflows",
            "create",
            "--only-json",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    workflow = json.loads(done.stdout[done.stdout.index("{") :])
    resources = argo_container(workflow, "augment_data_train_model")["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "4"
    assert resources["requests"]["cpu"] == "16.0"


def test_argo_image_tier_runs_the_recorded_image_by_digest(aws: dict[str, str], tmp_path: Path) -> None:
    from envtiers.image.spec import load_spec
    from envtiers.settings import load_project

    project = copy_project(tmp_path / "project")
    # A record of the image of exactly this code and lock (a stale one is refused before compiling).
    spec = load_spec(load_project(project))
    record = {
        "format-version": 1,
        "repository": "registry.example.com/ml/detector",
        "tag": spec.tag,
        "digest": DIGEST,
        "lock-hash": spec.lock_hash,
        "base-digest": spec.base_digest,
        "base-image": spec.base_image,
        "dockerfile-hash": spec.dockerfile_hash,
    }
    (project / "lockfiles" / "image.json").write_text(json.dumps(record))
    workflow = compile_flow(project / "flows" / "detector_flow.py", "image", "argo-workflows", aws, tmp_path)
    for step in ("start", "augment_data_train_model", "evaluate_model", "deploy", "end"):
        container = argo_container(workflow, step)
        assert container["image"] == f"registry.example.com/ml/detector@{DIGEST}"
        command = " ".join(container["command"] + (container.get("args") or []))
        assert "env create" not in command  # the image is the environment
    train = argo_container(workflow, "augment_data_train_model")
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_image_tier_without_a_record_says_to_build_one(aws: dict[str, str], tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / "lockfiles" / "image.json").unlink(missing_ok=True)
    env = {k: v for k, v in aws.items() if k.isupper()}
    done = run_flow(
        project / "flows" / "detector_flow.py",
        ["--environment=envtiers-image", "--datastore=s3", "argo-workflows", "create", "--only-json"],
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode != 0
    assert "lockfiles/image.json does not exist" in done.stdout
    assert "run `make image`" in done.stdout
    assert "Traceback" not in done.stdout


def state(machine: dict[str, Any], name: str) -> dict[str, Any]:
    """The state called `name`, at the top of the state machine or inside a Map (a foreach)."""
    for key, value in machine.get("States", {}).items():
        if key == name:
            return dict(value)
        nested = value.get("Iterator") or value.get("ItemProcessor")
        if nested:
            try:
                return state(nested, name)
            except KeyError:
                pass
    raise KeyError(name)


def test_step_functions_batch_job_requests_a_gpu_and_bootstraps(aws: dict[str, str], tmp_path: Path) -> None:

    machine = compile_flow(DETECTOR_FLOW, "pip", "step-functions", aws, tmp_path)
    train = state(machine, "augment_data_train_model")["Parameters"]  # inside the sweep's Map state
    command = " ".join(train["ContainerOverrides"]["Command"])
    assert "python -m envtiers --project . env create --tier pip --platform linux-64" in command
    assert ".envtiers/env/bin/python -s detector_flow.py" in command
    gpu = {r["Type"]: r["Value"] for r in train["ContainerOverrides"]["ResourceRequirements"]}
    assert gpu["GPU"] == "1"
    # The job definition Metaflow registered (in moto's Batch): its image, and no secret in it.
    described = moto_client("batch", aws).describe_job_definitions(jobDefinitions=[train["JobDefinition"]])
    definition = described["jobDefinitions"][0]
    assert definition["containerProperties"]["image"] == "python:3.11"
    assert SECRET not in json.dumps(definition, default=str)


def test_argo_conda_tier_bootstraps_from_the_conda_lock(aws: dict[str, str], tmp_path: Path) -> None:
    workflow = compile_flow(DETECTOR_FLOW, "conda", "argo-workflows", aws, tmp_path)
    command = " ".join(
        argo_container(workflow, "augment_data_train_model")["command"]
        + (argo_container(workflow, "augment_data_train_model").get("args") or [])
    )
    assert "--require-hashes --target .envtiers/tools -r lockfiles/tools.txt" in command
    assert (
        "python -m envtiers --project . env create --tier conda --platform linux-64 --target .envtiers/env" in command
    )
    assert ".envtiers/env/bin/python -s detector_flow.py" in command
    assert "--environment=envtiers-conda" in command
    with code_package(aws, command) as package:
        for name in ("lockfiles/conda-lock.yml", "envs/environment.yml", "envtiers/conda/environment.py"):
            shipped = package.extractfile(name).read()  # type: ignore[union-attr]
            assert shipped == (DETECTOR_FLOW.parents[1] / name).read_bytes()
