"""Image-tier benchmarks on the detector's real linux-64 lock and docker/Dockerfile: a cold build
(every layer rebuilt; the wheelhouse fetch included when the bench cache has none), a rebuild
after a code-only change (the
dependency layers must come from the cache), `make image` when the registry has the tag (goal
≤3 s), and the image's size next to its base's.

They need a docker engine, a registry and a base pinned by digest: the ones `.ci/docker-up`
starts (ENVTIERS_TEST_REGISTRY, ..._USER, ..._PASSWORD, ENVTIERS_TEST_BASE_IMAGE). The project
is copied to scratch, so the repository's lockfiles/image.json is never written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from bench.harness import REPO, BenchError, Context, envtiers_command, envtiers_env, run, sample, say
from bench.report import Goal, Measurement, Row

MODULE = "image"
PARTS = ("envtiers", "detector", "docker", "envs", "lockfiles", ".dockerignore")
_VARIABLES = (
    "ENVTIERS_TEST_REGISTRY",
    "ENVTIERS_TEST_REGISTRY_USER",
    "ENVTIERS_TEST_REGISTRY_PASSWORD",
    "ENVTIERS_TEST_BASE_IMAGE",
)


def _setup(ctx: Context) -> tuple[Path, dict[str, str], list[str]]:
    missing = [name for name in _VARIABLES if not os.environ.get(name)]
    if missing:
        raise BenchError(f'{", ".join(missing)} not set: run `eval "$(.ci/docker-up)"` first')
    project = ctx.tempdir("image-project")
    for part in PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / part)
    # The wheelhouse is kept between runs (3+ GB), so later cold builds time docker, not the index.
    # Docker sends a symlink as a link: the scratch project gets hard links (a copy across filesystems).
    _sync(ctx.cache_dir / "image-wheelhouse", project / "build" / "image" / "wheelhouse")
    env = envtiers_env(
        ENVTIERS_REGISTRY_USER=os.environ["ENVTIERS_TEST_REGISTRY_USER"],
        ENVTIERS_REGISTRY_PASSWORD=os.environ["ENVTIERS_TEST_REGISTRY_PASSWORD"],
    )
    registry = f"{os.environ['ENVTIERS_TEST_REGISTRY']}/bench{uuid.uuid4().hex[:8]}"
    args = ["image", "build", "--registry", registry, "--base-image", os.environ["ENVTIERS_TEST_BASE_IMAGE"]]
    return project, env, args


def _sync(source: Path, dest: Path) -> None:
    """Every file of `source` also in `dest` (hard links where possible)."""
    dest.mkdir(parents=True, exist_ok=True)
    source.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if not (dest / path.name).exists():
            try:
                os.link(path, dest / path.name)
            except OSError:
                shutil.copy2(path, dest / path.name)


def _record(project: Path) -> dict[str, str]:
    return dict(json.loads((project / "lockfiles" / "image.json").read_text()))


def _docker_json(*args: str) -> object:
    return json.loads(subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout)


def _size_gb(reference: str) -> float:
    return float(_docker_json("image", "inspect", "--format", "{{json .Size}}", reference)) / 1e9  # type: ignore[arg-type]


def _layers(reference: str) -> list[str]:
    return list(_docker_json("image", "inspect", "--format", "{{json .RootFS.Layers}}", reference))  # type: ignore[call-overload]


def bench_image(ctx: Context) -> list[Row]:
    fetched = not any((ctx.cache_dir / "image-wheelhouse").glob("*.whl"))
    project, env, args = _setup(ctx)
    base = os.environ["ENVTIERS_TEST_BASE_IMAGE"]

    say("cold build: every layer rebuilt (docker build --no-cache), pushed and recorded")
    cold, result = run(envtiers_command(project, *args, "--no-cache"), env=env)
    _sync(project / "build" / "image" / "wheelhouse", ctx.cache_dir / "image-wheelhouse")  # for the next run
    first = _record(project)
    reference = f"{first['repository']}@{first['digest']}"
    image_gb, base_gb = _size_gb(reference), _size_gb(base)

    say("code-only change: one file of detector/ edited, rebuilt from the layer cache")
    (project / "detector" / "__init__.py").open("a").write("\n# bench: a code-only change\n")
    code, _ = run(envtiers_command(project, *args), env=env)
    second = _record(project)
    old, new = _layers(reference), _layers(f"{second['repository']}@{second['digest']}")
    shared = sum(1 for a, b in zip(old, new, strict=False) if a == b)

    say("make image when the registry has the tag")

    def exists() -> float:
        seconds, done = run(envtiers_command(project, *args), env=env)
        if "nothing to build" not in done.stderr:
            raise BenchError("the registry had the tag but envtiers built again")
        return seconds

    present = sample(ctx.reps(5, 3), exists, what="tag present")
    # Untag what the bench built (~7 GB each); the registry keeps the pushed copies.
    subprocess.run(
        ["docker", "rmi", f"{first['repository']}:{first['tag']}", f"{second['repository']}:{second['tag']}"],
        capture_output=True,
        check=False,
    )
    command = "envtiers image build --registry R --base-image B"
    notes_size = f"image {image_gb:.2f} GB vs base {base_gb:.2f} GB (+{image_gb - base_gb:.2f} GB: the locked env)"
    return [
        Row(
            id="cold-build",
            benchmark="image",
            title="make image, cold: docker build --no-cache of the detector lock + push + record",
            envtiers=Measurement("envtiers", command + " --no-cache", [cold]),
            notes=[
                notes_size,
                "Includes fetching the wheelhouse (pip download on the host, 132 wheels, 3.4 GB)"
                if fetched
                else "The wheelhouse was already in the bench cache: docker build and push only.",
                f"Classic builder (DOCKER_BUILDKIT=0), local docker-registry; {len(result.stderr.splitlines())} "
                "lines of build/push output streamed.",
            ],
            details={
                "image_gb": round(image_gb, 3),
                "base_gb": round(base_gb, 3),
                "reference": reference,
                "wheelhouse_fetched": fetched,
            },
        ),
        Row(
            id="code-change",
            benchmark="image",
            title="make image after a code-only change (detector/ edited): dependency layers reused",
            envtiers=Measurement("envtiers", command, [code]),
            notes=[f"{shared} of {len(new)} layers shared with the previous image (all but the code layer)."],
            details={"layers_shared": shared, "layers": len(new)},
        ),
        Row(
            id="tag-exists",
            benchmark="image",
            title="make image when the registry already has the content tag (nothing built)",
            envtiers=Measurement("envtiers", command, present),
            goal=Goal("value_at_most", 3.0),
        ),
    ]


BENCHMARKS = {"image": bench_image}
