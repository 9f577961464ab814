"""Before remote steps are submitted: the image the record pins must be in the registry, by digest.

A remote scheduler (AWS Batch, Kubernetes) pulls `repository@digest` on a machine of its own; if
the registry lost that manifest (garbage-collected, repository deleted) or its tag now points
elsewhere, every job would fail minutes later with a pull error buried in its events. Checking
here costs one registry request and stops the run before any job is submitted.
"""

from __future__ import annotations

from envtiers.errors import InputError
from envtiers.image.docker import manifest_digest, session
from envtiers.image.record import ImageRecord
from envtiers.image.spec import registry_host
from envtiers.settings import Project

FIX = "`make image` (builds, pushes and records the image), then commit lockfiles/image.json"


def verify_pushed(project: Project) -> ImageRecord:
    """The current record, once the registry confirms it holds `repository@digest` and that the
    record's tag still names that digest.

    Raises InputError (fix: make image) when it does not; docker errors when the registry cannot
    be asked.
    """
    from envtiers.image.tier import current_record

    record = current_record(project)
    with session(registry_host=registry_host(record.repository), report=lambda line: None) as docker:
        pinned = manifest_digest(docker, record.reference)
        if pinned is None:
            raise InputError(
                f"the registry has no image {record.reference} (lockfiles/image.json): "
                "it was deleted, or never pushed there; no remote job was submitted",
                fix=FIX,
            )
        tagged = manifest_digest(docker, f"{record.repository}:{record.tag}")
    if tagged is not None and tagged != record.digest:
        raise InputError(
            f"{record.repository}:{record.tag} is {tagged} in the registry, but lockfiles/image.json "
            f"records {record.digest}: the image was rebuilt elsewhere; no remote job was submitted",
            fix=FIX,
        )
    return record
