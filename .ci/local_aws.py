"""A local AWS for the remote tests: moto's server, whose Batch runs every job as a real container.

    .venv/bin/python .ci/local_aws.py serve --port 5055 --credentials FILE   (started by .ci/aws-up)
    .venv/bin/python .ci/local_aws.py setup --endpoint URL --bucket B --queue Q --region R

moto starts each job with the Docker SDK. On real AWS Batch the ECS agent gives a job's container
its role's credentials through a credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI),
never as values in the job definition; this process plays that agent: it serves the dummy
credentials in FILE on 127.0.0.1 and points each job container at them
(AWS_CONTAINER_CREDENTIALS_FULL_URI, which boto3 reads). The job containers share the host
network (MOTO_DOCKER_NETWORK_MODE=host), so they reach moto, the registry and test indexes on
127.0.0.1. Nothing here is known to envtiers or the flows: they see a Batch API and an S3 API.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve_credentials(credentials: dict[str, str], token: str) -> str:
    """Serve `credentials` as the ECS credentials endpoint does; returns its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != token:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps(
                {
                    "AccessKeyId": credentials["AWS_ACCESS_KEY_ID"],
                    "SecretAccessKey": credentials["AWS_SECRET_ACCESS_KEY"],
                    "Token": "local-aws-session",
                    "Expiration": "2099-01-01T00:00:00Z",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v2/credentials/batch-job-role"


def inject_into_job_containers(variables: dict[str, str]) -> None:
    """Add `variables` to every container moto's Batch starts (what the ECS agent adds)."""
    from docker.models.containers import ContainerCollection

    original = ContainerCollection.run

    def run(self, image, command=None, stdout=True, stderr=False, remove=False, **kwargs):  # type: ignore[no-untyped-def]
        environment = kwargs.get("environment")
        if isinstance(environment, dict):
            environment.update(variables)
        elif isinstance(environment, list):
            environment.extend(f"{name}={value}" for name, value in variables.items())
        else:
            kwargs["environment"] = dict(variables)
        # On the host network a container would take the host's name; a Batch container has its own.
        job_id = (environment or {}).get("AWS_BATCH_JOB_ID", "") if isinstance(environment, dict) else ""
        kwargs.setdefault("hostname", f"batch-job-{job_id[:12] or 'local'}")
        return original(self, image, command, stdout, stderr, remove, **kwargs)

    ContainerCollection.run = run  # type: ignore[method-assign]


def setup(endpoint: str, *, bucket: str, queue: str, region: str) -> dict[str, str]:
    """Create (or find) what Metaflow's @batch needs: the datastore bucket, an IAM role and
    instance profile, a VPC subnet and security group, a compute environment and a job queue.
    Idempotent: a restarted moto (in-memory) gets them again. Returns the ARNs to export."""
    import boto3

    session = boto3.session.Session(region_name=region)
    s3 = session.client("s3", endpoint_url=endpoint)
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
    iam = session.client("iam", endpoint_url=endpoint)
    roles = {r["RoleName"]: r["Arn"] for r in iam.list_roles()["Roles"]}
    trust = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
    role = (
        roles.get("metaflow-batch-job")
        or iam.create_role(RoleName="metaflow-batch-job", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    )
    profiles = {p["InstanceProfileName"]: p["Arn"] for p in iam.list_instance_profiles()["InstanceProfiles"]}
    profile = (
        profiles.get("metaflow-batch-ecs")
        or iam.create_instance_profile(InstanceProfileName="metaflow-batch-ecs")["InstanceProfile"]["Arn"]
    )
    batch = session.client("batch", endpoint_url=endpoint)
    compute_name = f"{queue}-compute"
    found = batch.describe_compute_environments(computeEnvironments=[compute_name])["computeEnvironments"]
    if found:
        compute = found[0]["computeEnvironmentArn"]
    else:
        ec2 = session.client("ec2", endpoint_url=endpoint)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName=f"{queue}-sg", Description="batch", VpcId=vpc)["GroupId"]
        compute = batch.create_compute_environment(
            computeEnvironmentName=compute_name,
            type="MANAGED",
            state="ENABLED",
            serviceRole=role,
            computeResources={
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": 64,
                "desiredvCpus": 0,
                "instanceTypes": ["optimal"],
                "subnets": [subnet],
                "securityGroupIds": [group],
                "instanceRole": profile,
            },
        )["computeEnvironmentArn"]
    if not batch.describe_job_queues(jobQueues=[queue])["jobQueues"]:
        batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute}],
        )
    return {"role": role, "queue": queue, "bucket": bucket}


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run moto's server with Batch in Docker")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--credentials", type=Path, required=True, help="env file with the dummy key pair")
    make = commands.add_parser("setup", help="create the bucket, role, compute environment and queue")
    make.add_argument("--endpoint", required=True)
    make.add_argument("--bucket", required=True)
    make.add_argument("--queue", required=True)
    make.add_argument("--region", required=True)
    args = parser.parse_args()
    if args.command == "setup":
        print(json.dumps(setup(args.endpoint, bucket=args.bucket, queue=args.queue, region=args.region)))
        return
    credentials = dict(
        line.split("=", 1) for line in args.credentials.read_text().splitlines() if "=" in line and line.strip()
    )
    os.environ["MOTO_DOCKER_NETWORK_MODE"] = "host"
    token = secrets.token_hex(16)
    url = serve_credentials(credentials, token)
    # What AWS Batch's agent sets in every job container besides AWS_BATCH_JOB_ID (moto sets that).
    inject_into_job_containers(
        {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_CE_NAME": "local-aws",
            "AWS_BATCH_JQ_NAME": "local-aws",
            "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
        }
    )
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", str(args.port)])


if __name__ == "__main__":
    main()
