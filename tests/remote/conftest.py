"""Fixtures for remote runs: the local AWS (moto Batch in Docker, from .ci/aws-up), skipped with
the reason outside CI and a failure under CI=true, like the docker fixtures."""

from __future__ import annotations

import os

import pytest

from tests.image.support import docker_ready
from tests.remote.support import LocalAws, start_local_aws


@pytest.fixture(scope="session")
def local_aws() -> LocalAws:
    # .ci/aws-up needs docker-up's engine, registry and base (it builds the Batch task base on it).
    reason = docker_ready()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the remote tests: {reason}")
        pytest.skip(reason)
    try:
        return start_local_aws()
    except RuntimeError as error:
        pytest.fail(str(error))
