"""The image tier's local launch, rendered: `docker run` with the same paths, the caller's uid and
environment variables by name only (no docker needed)."""

from __future__ import annotations

from pathlib import Path

from envtiers.image.tier import datastore_dirs, docker_run_argv, forwarded_names, mount_points
from envtiers.tiers import LocalLaunch


def test_argv_mounts_same_paths_and_forwards_names_only(tmp_path: Path) -> None:
    argv = docker_run_argv(
        reference="r.example/x@sha256:" + "0" * 64,
        mounts=[tmp_path],
        read_only=[Path("/opt/toolkit")],
        workdir=tmp_path,
        user="1000:1000",
        env_names=["AWS_SECRET_ACCESS_KEY", "USER"],
    )
    text = " ".join(argv)
    assert argv[:4] == ("docker", "run", "--rm", "-i")
    assert f"--volume {tmp_path}:{tmp_path}" in text and "--volume /opt/toolkit:/opt/toolkit:ro" in text
    assert f"--workdir {tmp_path}" in text and "--user 1000:1000" in text
    assert "-e AWS_SECRET_ACCESS_KEY" in text and "=" not in text.split("-e AWS_SECRET_ACCESS_KEY")[1].split()[0]
    assert argv[-2:] == ("r.example/x@sha256:" + "0" * 64, "python")


def test_forwarded_names_keep_task_settings_and_drop_host_only_ones() -> None:
    environ = {
        "METAFLOW_USER": "a",
        "AWS_PROFILE": "p",
        "HOME": "/root",
        "PATH": "/bin",
        "USER": "me",
        "ENVTIERS_CACHE_DIR": "/c",
        "ENVTIERS_REGISTRY_PASSWORD": "secret",
        "ENVTIERS_TIER": "image",
    }
    assert forwarded_names(environ, extra=["PYTHONPATH"]) == [
        "AWS_PROFILE",
        "ENVTIERS_TIER",
        "METAFLOW_USER",
        "PYTHONPATH",
        "USER",
    ]


def test_nested_mounts_are_merged(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert mount_points([tmp_path / "a" / "b", tmp_path / "a", tmp_path / "missing"]) == [tmp_path / "a"]


def test_datastore_is_found_above_the_cwd(tmp_path: Path) -> None:
    (tmp_path / ".metaflow").mkdir()
    (tmp_path / "sub").mkdir()
    assert datastore_dirs(tmp_path / "sub", {}) == [tmp_path / ".metaflow"]
    assert datastore_dirs(tmp_path, {"METAFLOW_DATASTORE_SYSROOT_LOCAL": "/data"}) == [Path("/data")]


def test_the_runtime_env_of_a_task_is_forwarded_by_name() -> None:
    launch = LocalLaunch(tier="image", key="k", argv=("docker", "run", "-e", "USER", "img", "python"), env_slot=4)
    assert launch.argv_forwarding({"USER", "PYTHONPATH"}) == (
        "docker",
        "run",
        "-e",
        "USER",
        "-e",
        "PYTHONPATH",
        "img",
        "python",
    )
    plain = LocalLaunch(tier="pip", key="k", argv=("/env/bin/python",))
    assert plain.argv_forwarding({"X"}) == ("/env/bin/python",)


def test_files_named_by_task_options_are_mounted_read_only() -> None:
    launch = LocalLaunch(tier="image", key="k", argv=("docker", "run", "img", "python"), env_slot=2)
    assert launch.argv_forwarding((), ["/tmp/tmpabc"]) == (
        "docker", "run", "--volume", "/tmp/tmpabc:/tmp/tmpabc:ro", "img", "python",
    )  # fmt: skip
