"""Fixtures for the review commands: the conda tier's project factory is shared with tests/conda."""

from tests.conda.conftest import make_conda_project

__all__ = ["make_conda_project"]
