"""Image-tier benchmarks on the detector's real linux-64 lock and docker/Dockerfile: a cold build
(every layer rebuilt; the wheelhouse fetch included when the bench cache has none), a rebuild
after a code-only change (goal ≤10 s: the environment image is reused, only the code is sent and
pushed) next to the same change under the previous one-image design (IMAGE_PREVIOUS_REVISION,
whose build context carried the multi-GB wheelhouse every time), `make image` when the registry
has the tag (goal ≤3 s), and the image's size next to its base's.

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
# The last commit where one docker build installed the wheelhouse and copied the code (issue 10's
# "today's design"): the code-only rebuild is measured there too, in the same run.
IMAGE_PREVIOUS_REVISION = "e2aa167"
_VARIABLES = (
    "ENVTIERS_TEST_REGISTRY",
    "ENVTIERS_TEST_REGISTRY_USER",
    "ENVTIERS_TEST_REGISTRY_PASSWORD",
    "ENVTIERS_TEST_BASE_IMAGE",
)


def _setup(ctx: Context, revision: str | None = None) -> tuple[Path, dict[str, str], list[str]]:
    """A copy of the project (at `revision`, when given) with the bench's registry arguments."""
    missing = [name for name in _VARIABLES if not os.environ.get(name)]
    if missing:
        raise BenchError(f'{", ".join(missing)} not set: run `eval "$(.ci/docker-up)"` first')
    project = ctx.tempdir(f"image-project-{revision or 'head'}")
    if revision is None:
        for part in PARTS:
            source = REPO / part
            if source.is_dir():
                shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, project / part)
    else:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, *PARTS], capture_output=True, check=False
        )
        if archive.returncode != 0:
            raise BenchError(f"{revision} is not in this clone: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(project)], input=archive.stdout, check=True)
    # The wheelhouse is kept between runs (3+ GB), so later cold builds time docker, not the index.
    # Docker sends a symlink as a link: the scratch project gets hard links (a copy across filesystems).
    _sync(ctx.cache_dir / "image-wheelhouse", project / "build" / "image" / "wheelhouse")
    env = envtiers_env(
        ENVTIERS_REGISTRY_USER=os.environ["ENVTIERS_TEST_REGISTRY_USER"],
        ENVTIERS_REGISTRY_PASSWORD=os.environ["ENVTIERS_TEST_REGISTRY_PASSWORD"],
    )
    if revision is not None:  # that revision's envtiers builds its own project
        env["PYTHONPATH"] = str(project)
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


def _top_layer_size(reference: str) -> int:
    """Bytes of the newest non-empty layer (the code's) per `docker history`."""
    rows = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{json .}}", reference], capture_output=True, text=True
    ).stdout.splitlines()
    for row in rows:
        size = json.loads(row).get("Size", "0B")
        if size not in ("0B", "0"):
            return _bytes(size)
    return 0


def _bytes(text: str) -> int:
    units = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return int(float(text))


def _layers(reference: str) -> list[str]:
    return list(_docker_json("image", "inspect", "--format", "{{json .RootFS.Layers}}", reference))  # type: ignore[call-overload]


def _code_change(project: Path, env: dict[str, str], args: list[str]) -> tuple[float, int, list[str]]:
    """Edit one file of detector/, then `make image`: (seconds, layers pushed, output lines)."""
    with (project / "detector" / "__init__.py").open("a") as code:
        code.write(f"\n# bench: a code-only change {uuid.uuid4().hex[:8]}\n")
    seconds, done = run(envtiers_command(project, *args), cwd=project, env=env)  # the copy's envtiers
    lines = done.stderr.splitlines() + done.stdout.splitlines()
    return seconds, sum(1 for line in lines if line.endswith(": Pushed")), lines


def _previous_design(ctx: Context) -> tuple[Measurement | None, int | None]:
    """The code-only rebuild under IMAGE_PREVIOUS_REVISION: built once (untimed, from docker's
    layer cache where it has them), then the same edit timed."""
    project, env, args = _setup(ctx, IMAGE_PREVIOUS_REVISION)
    say(f"previous design ({IMAGE_PREVIOUS_REVISION}): first build, untimed")
    run(envtiers_command(project, *args), cwd=project, env=env)  # `-m` puts the cwd first: that revision's envtiers
    say(f"previous design ({IMAGE_PREVIOUS_REVISION}): the same code-only change")
    seconds, pushed, _ = _code_change(project, env, args)
    _untag(project)
    command = f"envtiers image build (at {IMAGE_PREVIOUS_REVISION}: one build, the wheelhouse in its context)"
    return Measurement(f"envtiers {IMAGE_PREVIOUS_REVISION}", command, [seconds]), pushed


def _untag(project: Path) -> None:
    """Untag what a bench project built (~7 GB each); the registry keeps the pushed copies."""
    repository = _record(project)["repository"]
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repository], capture_output=True, text=True
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "rmi", *listed], capture_output=True, check=False)


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

    say("make image when the registry has the tag")

    def exists() -> float:
        seconds, done = run(envtiers_command(project, *args), env=env)
        if "nothing to build" not in done.stderr:
            raise BenchError("the registry had the tag but envtiers built again")
        return seconds

    present = sample(ctx.reps(5, 3), exists, what="tag present")
    _untag(project)
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
            id="tag-exists",
            benchmark="image",
            title="make image when the registry already has the content tag (nothing built)",
            envtiers=Measurement("envtiers", command, present),
            goal=Goal("value_at_most", 3.0),
        ),
    ]


def bench_code_rebuild(ctx: Context) -> list[Row]:
    """`make image` after a code-only change, next to the previous one-image design, same run. The
    first build of each is untimed (it may reuse docker's layer cache and the registry)."""
    project, env, args = _setup(ctx)
    say("code-only rebuild: first build, untimed")
    run(envtiers_command(project, *args), env=env)
    first = _record(project)
    reference = f"{first['repository']}@{first['digest']}"
    say("code-only change: one file of detector/ edited, rebuilt")
    code, pushed, lines = _code_change(project, env, args)
    reused_env = any("already has the environment" in line for line in lines)
    second = _record(project)
    old, new = _layers(reference), _layers(f"{second['repository']}@{second['digest']}")
    shared = sum(1 for a, b in zip(old, new, strict=False) if a == b)
    code_layer = _top_layer_size(f"{second['repository']}@{second['digest']}")
    _untag(project)
    # The previous design's first build is a cold ~7 GB one (its layers share nothing with this
    # design's): ENVTIERS_BENCH_IMAGE_PREVIOUS=0 leaves it out where the disk or the time is short.
    previous, previous_pushed = (
        _previous_design(ctx) if os.environ.get("ENVTIERS_BENCH_IMAGE_PREVIOUS", "1") != "0" else (None, None)
    )
    command = "envtiers image build --registry R --base-image B"
    return [
        Row(
            id="code-change",
            benchmark="image",
            title="make image after a code-only change (detector/ edited): rebuild + push, vs the one-image design",
            envtiers=Measurement("envtiers", command, [code]),
            alternative=previous,
            goal=Goal("value_at_most", 10.0),
            notes=[
                f"{shared} of {len(new)} layers shared with the previous image (all but the code layer); "
                f"layers pushed: {pushed} (the code's, {code_layer / 1e3:.0f} kB)"
                + (
                    f", against {previous_pushed} under {IMAGE_PREVIOUS_REVISION}."
                    if previous is not None
                    else f"; {IMAGE_PREVIOUS_REVISION} not measured (ENVTIERS_BENCH_IMAGE_PREVIOUS=0)."
                ),
                "The environment image came from the registry, not rebuilt: "
                + ("yes" if reused_env else "NO (it was rebuilt)")
                + f". {IMAGE_PREVIOUS_REVISION} sends its 3+ GB wheelhouse to docker on every build.",
            ],
            details={"layers_shared": shared, "layers": len(new), "layers_pushed": pushed, "env_reused": reused_env},
        ),
    ]


BENCHMARKS = {"image": bench_image, "code-rebuild": bench_code_rebuild}
