"""What goes into the image, and the content hash that names it: pure functions, no docker.

Like flytekit's ImageSpec: the tag is a hash of exactly what changes the image's content (the
Dockerfile and the files it copies, the linux-64 lock, the base digest, the build args that reach
a RUN or COPY). Metadata that does not change the content (labels: revision, created) is left out,
so a new commit with the same content reuses the image the registry already has.

WARNING: `TAG_RECIPE` names the recipe. Changing what `image_tag` hashes changes every tag, so
every project rebuilds its image once: bump `TAG_RECIPE` when you do it on purpose.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from envtiers.codefiles import image_code, project_files
from envtiers.envcache import MARKER_FORMAT
from envtiers.errors import InputError
from envtiers.hashing import file_digest, input_hash, text_digest
from envtiers.pip import lockfile
from envtiers.settings import Project, env

# 2: the code files are envtiers.codefiles.project_files (what the Dockerfile copies, .md included).
# 3: the environment is its own image (ENV_RECIPE), which the project's Dockerfile starts FROM.
TAG_RECIPE = 3
PLATFORM = "linux-64"  # what the image runs on: AWS Batch, Kubernetes, SageMaker
DOCKERFILE = Path("docker") / "Dockerfile"
# envtiers' own recipe of the environment image (the lock installed over the base); its context is
# BUILD_DIR, holding the wheelhouse and ENV_REQUIREMENTS (a copy of the linux-64 lock).
ENV_RECIPE = Path(__file__).with_name("env.Dockerfile")
BUILD_DIR = Path("build") / "image"  # host-side inputs the Dockerfiles copy (gitignored)
WHEELHOUSE = BUILD_DIR / "wheelhouse"
ENV_REQUIREMENTS = BUILD_DIR / "requirements.txt"
MARKER_FILE = BUILD_DIR / "envtiers-complete.json"
# Where the Dockerfile puts the env; the marker @envtiers reads lives at its root (sys.prefix).
IMAGE_PREFIX = "/opt/envtiers/env"
DEFAULT_REGISTRY = "ghcr.io/envtiers"
DEFAULT_REPOSITORY = "detector"

_ARG_BASE = re.compile(r"^ARG\s+BASE_IMAGE=(?P<value>\S+)\s*$", re.MULTILINE)
_PINNED = re.compile(r"^(?P<name>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides the image's content, read from the project."""

    project: Project
    registry: str
    repository: str
    base_image: str  # name@sha256:...
    lock_path: Path
    lock_hash: str  # "sha256:<body digest of the linux-64 lock>"
    dockerfile_hash: str  # "sha256:<digest of docker/Dockerfile>"
    # Files the Dockerfile copies besides the lock and wheels: (path from the root, sha256), read
    # once, so the spec (and its tag) describes the files as they were when it was loaded.
    code: tuple[tuple[str, str], ...] = field(default=())

    @property
    def base_name(self) -> str:
        return self.base_image.split("@", 1)[0]

    @property
    def base_digest(self) -> str:
        return self.base_image.split("@", 1)[1]

    @property
    def image_name(self) -> str:
        return f"{self.registry.rstrip('/')}/{self.repository}" if self.registry else self.repository

    @property
    def tag(self) -> str:
        return image_tag(self)

    @property
    def reference(self) -> str:
        return f"{self.image_name}:{self.tag}"

    @property
    def env_tag(self) -> str:
        return env_tag(self)

    @property
    def env_reference(self) -> str:
        """The environment image (base + the locked env), in the project's repository."""
        return f"{self.image_name}:{self.env_tag}"

    @property
    def registry_host(self) -> str:
        return registry_host(self.image_name)


def registry_host(image_name: str) -> str:
    """The registry part of an image name ("docker.io" when it has none, as docker reads it)."""
    first = image_name.split("/", 1)[0]
    if "/" in image_name and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def content_build_args(spec: ImageSpec) -> dict[str, str]:
    """Build args that reach a RUN or COPY, hence part of the tag."""
    return {"BASE_IMAGE": spec.base_image}


def label_build_args(spec: ImageSpec, *, source: str, revision: str, source_date_epoch: int) -> dict[str, str]:
    """Build args that only fill labels (not hashed: metadata of the first build of this content)."""
    from datetime import UTC, datetime

    created = datetime.fromtimestamp(source_date_epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "BASE_DIGEST": spec.base_digest,
        "LOCK_HASH": spec.lock_hash,
        "SOURCE": source,
        "REVISION": revision,
        "CREATED": created,
    }


def env_tag(spec: ImageSpec) -> str:
    """The content hash that names the environment image: `env-` and 24 hex digits, from what
    decides its content (envtiers' recipe, the lock, the base digest) and nothing else, so every
    code change and every commit reuses it."""
    digest = input_hash(
        {
            "env-recipe": text_digest(ENV_RECIPE.read_text()),
            "lock": spec.lock_hash,
            "base-digest": spec.base_digest,
            "build-args": content_build_args(spec),
        }
    )
    return "env-" + digest.removeprefix("sha256:")[:24]


def image_tag(spec: ImageSpec) -> str:
    """The content hash that names the image: 24 hex digits (see TAG_RECIPE before changing)."""
    digest = input_hash(
        {
            "image-tag-recipe": TAG_RECIPE,
            "env": env_tag(spec),
            "dockerfile": spec.dockerfile_hash,
            "lock": spec.lock_hash,
            "base-digest": spec.base_digest,
            "build-args": content_build_args(spec),
            "marker": text_digest(render_marker(spec)),
            "code": dict(spec.code),
        }
    )
    return digest.removeprefix("sha256:")[:24]


def render_marker(spec: ImageSpec) -> str:
    """The completion marker baked into the image at IMAGE_PREFIX (see envtiers.envcache)."""
    marker = {"format-version": MARKER_FORMAT, "tier": "image", "key": spec.lock_hash, "platform": PLATFORM}
    return json.dumps(marker, indent=2, sort_keys=True) + "\n"


def dockerfile_base_default(text: str) -> str | None:
    """The default of `ARG BASE_IMAGE=...` in a Dockerfile's text, or None."""
    match = _ARG_BASE.search(text)
    return match.group("value") if match else None


def check_pinned(base_image: str, *, where: str) -> str:
    """`base_image` when it is name@sha256:<64 hex>; raises InputError otherwise."""
    if not _PINNED.match(base_image):
        raise InputError(
            f"base image {base_image!r} ({where}) is not pinned by digest",
            fix="use name@sha256:<digest> (docker image inspect --format '{{.RepoDigests}}' NAME)",
        )
    return base_image


def lock_hash_of(lock: lockfile.PipLock) -> str:
    return f"sha256:{lock.header.body_sha256}"


def read_image_lock(project: Project) -> lockfile.PipLock:
    """The linux-64 runtime lock, validated. Raises InputError / LockfileFormatError."""
    path = project.pip_lock_dir / f"{PLATFORM}.txt"
    display = project.rel(path)
    if not path.is_file():
        raise InputError(f"{display} does not exist: the image installs the linux-64 lock", fix="run `make lock`")
    return lockfile.read_intact(path, display=display)


def code_files(project: Project) -> tuple[Path, ...]:
    """The project files the Dockerfile copies besides the lock and wheelhouse: docker/ and the
    packages in [image] code (default: [flow] include). Must agree with docker/Dockerfile and
    .dockerignore (see envtiers.codefiles)."""
    return project_files(project, ["docker", *image_code(project)])


def load_spec(project: Project, *, registry: str | None = None, base_image: str | None = None) -> ImageSpec:
    """The image spec from (in order) the arguments, ENVTIERS_REGISTRY / REGISTRY and
    ENVTIERS_BASE_IMAGE / BASE_IMAGE, [image] in envs/tiers.toml, the Dockerfile's defaults.

    Raises InputError for a missing Dockerfile or lock, or a base not pinned by digest.
    """
    image = project.image
    dockerfile = project.root / DOCKERFILE
    try:
        text = dockerfile.read_text()
    except FileNotFoundError:
        raise InputError(
            f"{DOCKERFILE} not found in {project.root}", fix="add the image tier's docker/Dockerfile"
        ) from None
    registry = _first(registry, env("ENVTIERS_REGISTRY"), env("REGISTRY"), image.registry)
    repository = image.repository or DEFAULT_REPOSITORY
    if base_image:
        where = "--base-image"
    elif _first(env("ENVTIERS_BASE_IMAGE"), env("BASE_IMAGE")):
        base_image, where = _first(env("ENVTIERS_BASE_IMAGE"), env("BASE_IMAGE")), "BASE_IMAGE"
    elif image.base:
        base_image, where = image.base, "[image] base in envs/tiers.toml"
    else:
        base_image, where = dockerfile_base_default(text), f"ARG BASE_IMAGE in {DOCKERFILE}"
    if not base_image:
        raise InputError(f"{DOCKERFILE} has no `ARG BASE_IMAGE=name@sha256:...`", fix="declare the pinned base there")
    lock = read_image_lock(project)
    return ImageSpec(
        project=project,
        registry=(registry if registry is not None else DEFAULT_REGISTRY).rstrip("/"),
        repository=repository,
        base_image=check_pinned(base_image, where=where),
        lock_path=lock.path,
        lock_hash=lock_hash_of(lock),
        dockerfile_hash="sha256:" + text_digest(text),
        code=tuple((path.relative_to(project.root).as_posix(), file_digest(path)) for path in code_files(project)),
    )


def dockerfile_hash(project: Project) -> str | None:
    try:
        return "sha256:" + text_digest((project.root / DOCKERFILE).read_text())
    except FileNotFoundError:
        return None


def _first(*values: object) -> str | None:
    for value in values:
        if value is not None and str(value) != "":
            return str(value)
    return None
