"""`envtiers check` for the image tier: a committed lockfiles/image.json must describe the image
of the current linux-64 lock, docker/Dockerfile and the code the image copies. Offline: recomputes
the content tag (a pure function of those files, `envtiers.image.spec.image_tag`) and compares it
with the record's; never asks docker.

No record is not a problem (teams that do not use the image tier have none).
"""

from __future__ import annotations

from envtiers.errors import EnvtiersError, LockfileFormatError
from envtiers.image.record import read_record, record_path
from envtiers.image.spec import PLATFORM, dockerfile_hash, load_spec, lock_hash_of, read_image_lock
from envtiers.problems import Problem, problem_from_error
from envtiers.settings import Project

STALE_FIX = "run `make image` (then commit lockfiles/image.json)"


def check_image(project: Project) -> tuple[list[str], list[Problem]]:
    path = record_path(project)
    if not path.is_file():
        return [], []
    display = project.rel(path)
    try:
        record = read_record(project)
    except LockfileFormatError as error:
        return [display], [problem_from_error(display, error)]
    problems: list[Problem] = []
    try:
        current = lock_hash_of(read_image_lock(project))
    except EnvtiersError:
        current = None  # the pip check reports the broken lock itself
    if current is not None and record.lock_hash != current:
        problems.append(
            Problem(
                display,
                f"image is stale: built from the {PLATFORM} lock {record.lock_hash[:19]}, "
                f"the lock is now {current[:19]}",
                STALE_FIX,
            )
        )
    dockerfile = dockerfile_hash(project)
    if not record.dockerfile_hash:
        problems.append(Problem(display, "image is stale: the record has no dockerfile-hash", STALE_FIX))
    elif dockerfile != record.dockerfile_hash:
        problems.append(
            Problem(display, "image is stale: docker/Dockerfile changed since the image was built", STALE_FIX)
        )
    if not problems:
        # Same lock and Dockerfile: what is left to differ is the code the image copies (detector/,
        # docker/) or the base. A stale tag means @batch and SageMaker would run the old code.
        try:
            tag = load_spec(project, base_image=record.base_image or None).tag
        except EnvtiersError as error:
            problems.append(Problem(display, f"the image's tag cannot be recomputed: {error.headline}", STALE_FIX))
        else:
            if tag != record.tag:
                problems.append(
                    Problem(
                        display,
                        f"image is stale: the record's tag {record.tag} is not the content tag {tag} of the current "
                        "code, docker/ and lock (code changed since the image was built)",
                        STALE_FIX,
                    )
                )
    return [display], problems
