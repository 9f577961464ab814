"""`envtiers image build | push | inspect`: build the image of the linux-64 lock once per content,
push it, and pin it by digest in lockfiles/image.json.

`build` is what `make image` runs: when the registry already has the content tag, nothing is
built (the record is refreshed from the registry's digest). Otherwise it builds in two images:

1. the environment image (`<repository>:env-<hash>`, envtiers/image/env.Dockerfile: the base and
   the locked env), only when neither the registry nor this machine has it: the wheelhouse is
   fetched on the host, docker installs offline from it (context build/image), and it is pushed;
2. the project's docker/Dockerfile `FROM` that image by digest (context: the project root, code
   and marker only), pushed; its digest is read back and recorded.

So a code-only change sends docker only the code, and pushes only the code's layers.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envtiers.errors import EnvtiersError, InputError
from envtiers.fsutil import atomic_write_text
from envtiers.image import wheelhouse
from envtiers.image.docker import Docker, DockerCommandError, manifest_digest, session
from envtiers.image.record import ImageRecord, read_record, record_path, write_record
from envtiers.image.spec import (
    BUILD_DIR,
    DOCKERFILE,
    ENV_RECIPE,
    ENV_REQUIREMENTS,
    MARKER_FILE,
    WHEELHOUSE,
    ImageSpec,
    content_build_args,
    label_build_args,
    load_spec,
    read_image_lock,
    render_marker,
)
from envtiers.settings import Project
from envtiers.wheels import declared_virtual

Report = Callable[[str], None]


class ImageBuildError(EnvtiersError):
    pass


@dataclass(frozen=True)
class BuildResult:
    spec: ImageSpec
    record: ImageRecord | None  # None for a local-only build
    built: bool  # False when the registry (or the local engine, for --no-push) already had the tag


def _quiet(line: str) -> None:
    pass


def registry_digest(docker: Docker, spec: ImageSpec, reference: str | None = None) -> str | None:
    """The registry's digest for `reference` (default: the spec's tag), or None when it has none."""
    return manifest_digest(docker, reference or spec.reference)


def make_record(spec: ImageSpec, digest: str) -> ImageRecord:
    return ImageRecord(
        repository=spec.image_name,
        tag=spec.tag,
        digest=digest,
        lock_hash=spec.lock_hash,
        base_digest=spec.base_digest,
        base_image=spec.base_image,
        dockerfile_hash=spec.dockerfile_hash,
        path=record_path(spec.project),
    )


def prepare_env_context(spec: ImageSpec, *, report: Report = _quiet) -> None:
    """The environment image's context (build/image): the wheelhouse and the lock it installs."""
    project = spec.project
    lock = read_image_lock(project)
    wheelhouse.fetch(
        lock=lock,
        dest=project.root / WHEELHOUSE,
        python_version=project.python,
        index_url=project.pip.index_url,
        virtual=declared_virtual(project, wheelhouse.PLATFORM),
        report=report,
    )
    atomic_write_text(project.root / ENV_REQUIREMENTS, lock.path.read_text())


def ensure_env(docker: Docker, spec: ImageSpec, *, push: bool, no_cache: bool = False, report: Report = _quiet) -> str:
    """The environment image for the spec's lock and base, built only when neither the registry
    nor this machine has it; returns what the Dockerfile's ENV_IMAGE names (by digest when pushed)."""
    reference = spec.env_reference
    if not no_cache:
        digest = manifest_digest(docker, reference) if push else None
        if digest is not None:
            report(f"{spec.registry_host} already has the environment {spec.env_tag}: not rebuilt")
            return f"{spec.image_name}@{digest}"
        if docker.image_exists(reference):
            report(f"the environment {reference} is built on this machine")
            return _push_env(docker, spec, report=report) if push else reference
    prepare_env_context(spec, report=report)
    build_env(docker, spec, no_cache=no_cache, report=report)
    return _push_env(docker, spec, report=report) if push else reference


def build_env(docker: Docker, spec: ImageSpec, *, no_cache: bool = False, report: Report = _quiet) -> None:
    """`docker build` of the environment image from its prepared context (build/image), tagged
    spec.env_reference. Raises ImageBuildError (a wheel that is not the lock's fails pip)."""
    reference = spec.env_reference
    argv = ["build", "--tag", reference, "--file", str(ENV_RECIPE), "--build-arg", f"BASE_IMAGE={spec.base_image}"]
    if no_cache:
        argv.append("--no-cache")
    report(f"building the environment {reference} (base {spec.base_image})")
    _run_build(docker, [*argv, str(spec.project.root / BUILD_DIR)], epoch=_provenance(spec.project)[2])


def docker_build(
    docker: Docker, spec: ImageSpec, *, env_image: str, report: Report = _quiet, no_cache: bool = False
) -> None:
    """`docker build` of docker/Dockerfile over `env_image` (what `ensure_env` returned), tagged
    spec.reference. Raises ImageBuildError."""
    project = spec.project
    atomic_write_text(project.root / MARKER_FILE, render_marker(spec))
    source, revision, epoch = _provenance(project)
    args = {
        **content_build_args(spec),
        "ENV_IMAGE": env_image,
        **label_build_args(spec, source=source, revision=revision, source_date_epoch=epoch),
    }
    argv = ["build", "--tag", spec.reference, "--file", str(project.root / DOCKERFILE)]
    if no_cache:
        argv.append("--no-cache")
    for name, value in args.items():
        argv += ["--build-arg", f"{name}={value}"]
    report(f"building {spec.reference} (from {env_image})")
    _run_build(docker, [*argv, str(project.root)], epoch=epoch)


def _run_build(docker: Docker, argv: list[str], *, epoch: int) -> None:
    docker.env["DOCKER_BUILDKIT"] = "1" if docker.buildkit_available() else "0"
    docker.env["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        docker.run(argv, what="docker build", stream=True)
    except DockerCommandError as error:
        if "DO NOT MATCH THE HASHES" in error.output:
            raise ImageBuildError(
                "docker build failed: a wheel in the wheelhouse does not match the lock's hash",
                fix=f"delete {WHEELHOUSE} and run `make image` again (it is fetched from the index again)",
            ) from None
        raise ImageBuildError(error.headline, fix=error.fix) from None


def _push_env(docker: Docker, spec: ImageSpec, *, report: Report) -> str:
    """Push the environment image; returns it by digest (name@sha256:...)."""
    reference = spec.env_reference
    report(f"pushing the environment {reference}")
    docker.run(["push", reference], what=f"docker push {reference}", stream=True)
    digest = _pushed_digest(docker, spec, reference)
    return f"{spec.image_name}@{digest}"


def push(docker: Docker, spec: ImageSpec, *, report: Report = _quiet) -> ImageRecord:
    """Push the locally built tag, read its digest back and write the record."""
    if not docker.image_exists(spec.reference):
        raise InputError(f"{spec.reference} is not built on this machine", fix="run `envtiers image build`")
    report(f"pushing {spec.reference}")
    docker.run(["push", spec.reference], what=f"docker push {spec.reference}", stream=True)
    digest = _pushed_digest(docker, spec)
    record = make_record(spec, digest)
    write_record(record)
    report(f"recorded {record.reference} in {spec.project.rel(record.path)}")
    return record


def build(
    project: Project,
    *,
    registry: str | None = None,
    base_image: str | None = None,
    push_image: bool = True,
    no_cache: bool = False,
    report: Report = _quiet,
) -> BuildResult:
    """Build (unless the registry has the content tag), push and record the image.

    With push_image=False the image is only built locally (no registry, no record); no_cache
    rebuilds every layer (a cold build, for benchmarks).
    Raises InputError, DockerUnavailableError, RegistryAuthError, ImageBuildError, ToolError.
    """
    spec = load_spec(project, registry=registry, base_image=base_image)
    report(f"image {spec.reference}")
    with session(registry_host=spec.registry_host, report=report) as docker:
        if push_image:
            digest = registry_digest(docker, spec)
            if digest is not None:
                record = make_record(spec, digest)
                if _current_record(project) != record:
                    write_record(record)
                report(f"{spec.registry_host} already has {spec.tag}: nothing to build ({digest})")
                return BuildResult(spec, record, built=False)
        elif docker.image_exists(spec.reference):
            report(f"{spec.reference} is already built on this machine")
            return BuildResult(spec, None, built=False)
        env_image = ensure_env(docker, spec, push=push_image, no_cache=no_cache, report=report)
        docker_build(docker, spec, env_image=env_image, report=report, no_cache=no_cache)
        pushed = push(docker, spec, report=report) if push_image else None
    return BuildResult(spec, pushed, built=True)


def push_built(
    project: Project, *, registry: str | None = None, base_image: str | None = None, report: Report = _quiet
) -> ImageRecord:
    spec = load_spec(project, registry=registry, base_image=base_image)
    with session(registry_host=spec.registry_host, report=report) as docker:
        return push(docker, spec, report=report)


def inspect(project: Project, *, registry: str | None = None, base_image: str | None = None) -> dict[str, object]:
    """What the project's image would be, whether the registry has it, and the record's state."""
    spec = load_spec(project, registry=registry, base_image=base_image)
    with session(registry_host=spec.registry_host, report=_quiet) as docker:
        digest = registry_digest(docker, spec)
    info: dict[str, object] = {
        "reference": spec.reference,
        "tag": spec.tag,
        "base-image": spec.base_image,
        "lock-hash": spec.lock_hash,
        "dockerfile-hash": spec.dockerfile_hash,
        "registry-digest": digest,
    }
    current = _current_record(project)
    info["record"] = None if current is None else current.reference
    info["record-current"] = current is not None and current == make_record(spec, current.digest)
    return info


def _current_record(project: Project) -> ImageRecord | None:
    if not record_path(project).is_file():
        return None
    try:
        return read_record(project)
    except EnvtiersError:
        return None


def _pushed_digest(docker: Docker, spec: ImageSpec, reference: str | None = None) -> str:
    reference = reference or spec.reference
    details = docker.inspect(reference)
    repo_digests = details.get("RepoDigests")
    for entry in repo_digests if isinstance(repo_digests, list) else []:
        name, _, found = str(entry).partition("@")
        if name == spec.image_name:
            return found
    digest = registry_digest(docker, spec, reference)
    if digest is None:
        raise ImageBuildError(f"the registry has no digest for {reference} after the push", fix="retry `make image`")
    return digest


def _provenance(project: Project) -> tuple[str, str, int]:
    """(source URL, revision, SOURCE_DATE_EPOCH) for the labels: from the environment, else git."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=project.root, capture_output=True, text=True, check=False)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    source = project.image.source or _strip_credentials(git("config", "--get", "remote.origin.url")) or "unknown"
    revision = git("rev-parse", "HEAD") or "unknown"
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or "0"
    try:
        epoch = int(epoch_text)
    except ValueError:
        raise InputError(f"SOURCE_DATE_EPOCH={epoch_text!r} is not a number of seconds", fix="unset it") from None
    return source, revision, epoch


def _strip_credentials(url: str) -> str:
    """A remote URL without user:password@ (a token in a clone URL must not reach a label)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}" if sep else url


def wheelhouse_dir(project: Project) -> Path:
    return project.root / WHEELHOUSE
