"""Where a task really ran: the `envtiers_runtime` artifact every step stores.

Read inside the task, from what the scheduler and the launcher put in its environment:

- `scheduler`: "batch" when AWS Batch started the container (AWS_BATCH_JOB_ID), "kubernetes" in a
  pod (METAFLOW_KUBERNETES_POD_NAME, set by Metaflow's @kubernetes), else "local";
- `image`: the `repository@sha256:...` the task's container was started from (ENVTIERS_IMAGE, set
  by the launcher: the image tier's record, or the remote step's image), None outside a container;
- `tier`, `lock_hash` (the key of the environment's completion marker), `python`, `platform`.

The format is versioned: readers (the run summary, the card) refuse versions they do not know.
"""

from __future__ import annotations

import platform as _platform
import socket
import sys
from collections.abc import Mapping
from typing import Any

RUNTIME_FORMAT_VERSION = 1
# Set for each task by the launcher when it knows the container image (by digest).
IMAGE_VARIABLE = "ENVTIERS_IMAGE"


def scheduler_of(environ: Mapping[str, str]) -> str:
    if environ.get("AWS_BATCH_JOB_ID"):
        return "batch"
    if environ.get("METAFLOW_KUBERNETES_POD_NAME") or environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    return "local"


def platform_name() -> str:
    """This interpreter's platform as a conda subdir name (linux-64, osx-arm64, ...)."""
    from envtiers.errors import InputError
    from envtiers.platforms import host_platform_name

    try:
        return host_platform_name()
    except InputError:
        return f"{sys.platform}-{_platform.machine().lower()}"


def runtime_info(*, tier: str, lock_hash: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The `envtiers_runtime` dict for the task running in this process."""
    return {
        "format-version": RUNTIME_FORMAT_VERSION,
        "scheduler": scheduler_of(environ),
        "job_id": environ.get("AWS_BATCH_JOB_ID") or None,
        "hostname": socket.gethostname(),
        "image": environ.get(IMAGE_VARIABLE) or None,
        "tier": tier,
        "lock_hash": lock_hash,
        "python": sys.executable,
        "platform": platform_name(),
    }


def describe(info: Mapping[str, Any]) -> str:
    """One line for a run summary: `batch job 1a2b..., tier image, lock sha256:..., image repo@sha256:...`."""
    if info.get("format-version") != RUNTIME_FORMAT_VERSION:
        return f"envtiers_runtime format {info.get('format-version')!r} is not known to this envtiers"
    where = info["scheduler"] + (f" job {info['job_id']}" if info.get("job_id") else "")
    parts = [where, f"host {info['hostname']}", f"tier {info['tier']}", f"lock {str(info['lock_hash'])[:19]}"]
    if info.get("image"):
        parts.append(f"image {info['image']}")
    return ", ".join(parts)


PROVENANCE_HEADERS = ("step", "scheduler", "job", "tier", "lock hash", "image", "platform")


def provenance_rows(history: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """One row per step of `envtiers_provenance`, in PROVENANCE_HEADERS order (for the card)."""
    rows = []
    for step, info in history.items():
        rows.append(
            [
                step,
                str(info.get("scheduler")),
                str(info.get("job_id") or "-"),
                str(info.get("tier")),
                str(info.get("lock_hash") or "-"),
                str(info.get("image") or "-"),
                str(info.get("platform")),
            ]
        )
    return rows
