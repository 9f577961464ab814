"""Deploy an exported detector: ``local`` (a server process here) or ``sagemaker`` (an endpoint).

One module per target; both take an export folder (``python -m detector export``) and return
once the model answers (local: a smoke-tested ``/invocations``; SageMaker: an InService
endpoint). See each module for what it does and, for SageMaker, what was verified where.
"""

from __future__ import annotations

from detector.deploy.local import Deployment, SmokeResult, deploy_local, sample_png, smoke_test, wait_for_ping
from detector.deploy.sagemaker import (
    SageMakerDeployment,
    SageMakerTarget,
    deploy_sagemaker,
    resource_name,
    wait_for_endpoint,
)

__all__ = [
    "Deployment",
    "SageMakerDeployment",
    "SageMakerTarget",
    "SmokeResult",
    "deploy_local",
    "deploy_sagemaker",
    "resource_name",
    "sample_png",
    "smoke_test",
    "wait_for_endpoint",
    "wait_for_ping",
]
