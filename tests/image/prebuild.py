"""`python -m tests.image.prebuild`: build the detector image for the suite ahead of it.

`.ci/run` starts this in the background once the docker engine and registry are up, so the ~10
minute cold build (3+ GB of wheels downloaded, installed and pushed: mostly waiting on the network
and the disk) overlaps the suite's CPU-bound tests instead of adding to them. It builds exactly as
the tests' fixture does (`build_detector_image`, under the same file lock); the fixture then finds
the pushed tag, or, if this failed, builds again and fails with the error in the test report.
"""

from __future__ import annotations

import sys
import time

from tests.image.support import docker_ready, infra_from_env
from tests.image.test_detector_image import build_detector_image


def main() -> int:
    reason = docker_ready()
    if reason is not None:
        print(f"prebuild: not built: {reason}", file=sys.stderr)
        return 1
    started = time.monotonic()
    reference = build_detector_image(infra_from_env())
    print(f"prebuild: {reference} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
