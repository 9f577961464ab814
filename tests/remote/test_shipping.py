"""Environments shipped through the datastore, against moto's S3 server (the real `moto_server`
from the dev lock, on a free port): the launcher's upload and the task's fetch and install.

The pip-tier project is tiny (purepkg, platpkg; the tools lock holds uv and packaging), locked for
linux-64 against a local index; the conda-tier one locks python from the test channel plus the
remote tests' pip spec (purepkg, Metaflow, boto3). The bootstrap runs its real shell commands in a
folder laid out like the code package, after the index (and the channel) are stopped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envtiers.conda.environment import read_lock
from envtiers.conda.locker import lock as lock_conda
from envtiers.errors import InputError
from envtiers.pip import lockfile
from envtiers.pip.environment import env_key
from envtiers.pip.locker import lock, runtime_lock_path
from envtiers.registry import get_tier
from envtiers.remote import shipping
from envtiers.remote.fetch import FetchError, fetch
from envtiers.settings import Project, load_project
from tests.conda.channel import ChannelServer
from tests.remote.support import CONDA_TOOLS, add_remote_conda_tier, write_remote_project
from tests.support import MANYLINUX, REPO_ROOT, PackageIndex, build_packages, wheel_from_installed, write_project

pytestmark = pytest.mark.slow

BUCKET = "envtiers-datastore"
ROOT = f"s3://{BUCKET}/metaflow/envtiers"
MOTO_SERVER = Path(sys.executable).parent / "moto_server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"moto_server did not answer on {url}")
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty bucket; the variables a task sees (credentials by name, Metaflow's S3 endpoint)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("METAFLOW_S3_ENDPOINT_URL", moto_url)
    monkeypatch.delenv(shipping.OPT_OUT_VARIABLE, raising=False)
    from envtiers.remote.fetch import s3_client

    client = s3_client()
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []) if _bucket_exists(client) else []:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    if not _bucket_exists(client):
        client.create_bucket(Bucket=BUCKET)
    return client


def _bucket_exists(client: Any) -> bool:
    return BUCKET in {b["Name"] for b in client.list_buckets()["Buckets"]}


@dataclass
class Shippable:
    project: Project
    index: PackageIndex
    key: str
    uv_wheel: str


@pytest.fixture
def shippable(tmp_path: Path) -> Iterator[Shippable]:
    files = tmp_path / "index"
    build_packages(files)
    wheel_from_installed(files, "packaging")
    uv_wheel = wheel_from_installed(files, "uv")
    index = PackageIndex(files).start()
    root = write_project(
        tmp_path / "project",
        requirements="purepkg\nplatpkg\n",
        index_url=index.url,
        platforms=("linux-64",),
        tools="uv\npackaging\n",
    )
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)
    key = env_key(project, [lockfile.read(runtime_lock_path(project, "linux-64"))])
    yield Shippable(project, index, key, uv_wheel.name)
    index.stop()


def ship(shippable: Shippable, client: Any) -> shipping.ShipResult:
    return shipping.ship(
        shippable.project, root=ROOT, tier="pip", platform="linux-64", key=shippable.key, client=client
    )


def stored(client: Any) -> dict[str, bytes]:
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_every_locked_file_is_stored_once_under_its_sha256(shippable: Shippable, s3: Any) -> None:
    result = ship(shippable, s3)
    objects = {key: body for key, body in stored(s3).items() if "/files/" in key}
    names = sorted(key.rsplit("/", 1)[1] for key in objects)
    # linux-64's platpkg wheel only (the macOS one is locked too, but no linux task installs it).
    pinned = {pin.name: pin.version for pin in lockfile.read(runtime_lock_path(shippable.project, "linux-64")).pins}
    assert names == [
        "packaging-" + _version("packaging") + "-py3-none-any.whl",
        f"platpkg-{pinned['platpkg']}-{MANYLINUX}.whl",
        f"purepkg-{pinned['purepkg']}-py3-none-any.whl",
        shippable.uv_wheel,
    ]
    for key, body in objects.items():
        sha = key.split("/")[-2]
        assert key == f"metaflow/envtiers/files/sha256/{sha}/{key.rsplit('/', 1)[1]}"
        assert hashlib.sha256(body).hexdigest() == sha
        assert body == (shippable.index.directory / key.rsplit("/", 1)[1]).read_bytes()
    assert len({key.split("/")[-2] for key in objects}) == len(objects) == len(result.files) == 4
    assert result.uploaded == 5  # four files and the manifest
    assert result.manifest_url in {f"s3://{BUCKET}/{key}" for key in stored(s3)}


def test_a_second_run_uploads_nothing(shippable: Shippable, s3: Any) -> None:
    first = ship(shippable, s3)
    before = {item["Key"]: item["LastModified"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    shippable.index.stop()  # the manifest says everything is there: the index is not asked
    second = ship(shippable, s3)
    assert first.uploaded_bytes > 0
    assert (second.uploaded, second.uploaded_bytes) == (0, 0)
    after = {item["Key"]: item["LastModified"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert after == before


def test_a_file_missing_from_the_datastore_is_uploaded_again(shippable: Shippable, s3: Any) -> None:
    first = ship(shippable, s3)
    victim = next(key for key in stored(s3) if "/platpkg-" in key)
    s3.delete_object(Bucket=BUCKET, Key=victim)
    again = ship(shippable, s3)
    assert again.uploaded == 1 and 0 < again.uploaded_bytes < first.uploaded_bytes
    assert victim in stored(s3)


def test_a_file_altered_in_the_datastore_is_refused(shippable: Shippable, s3: Any, tmp_path: Path) -> None:
    result = ship(shippable, s3)
    victim = next(key for key in stored(s3) if "/purepkg-" in key)
    filename = victim.rsplit("/", 1)[1]
    s3.put_object(Bucket=BUCKET, Key=victim, Body=b"not the wheel the lock names")
    with pytest.raises(FetchError) as caught:
        fetch(result.manifest_url, tmp_path / "shipped", client=s3, say=lambda _: None)
    assert f"{filename} in the datastore" in caught.value.headline
    assert f"has sha256 {hashlib.sha256(b'not the wheel the lock names').hexdigest()}" in caught.value.headline
    assert "refusing it" in caught.value.headline
    assert not (tmp_path / "shipped" / "files" / filename).exists()


def run_bootstrap(project: Project, commands: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`commands` (a shipped bootstrap) run as a remote task runs them: in a folder laid out like
    the code package, on an interpreter with pip and boto3 (what Metaflow's task bootstrap installs)
    and nothing else on PATH: uv and py-rattler come from the shipped tools lock."""
    package = tmp_path / "code-package"
    for part in ("envs", "lockfiles"):
        shutil.copytree(project.root / part, package / part)
    shutil.copytree(REPO_ROOT / "envtiers", package / "envtiers", ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "UV_CACHE_DIR": str(tmp_path / "empty-uv-cache"),
        "ENVTIERS_CACHE_DIR": str(tmp_path / "task-cache"),
        "HOME": str(tmp_path / "home"),
        "PIP_CONFIG_FILE": os.devnull,
    }
    for name in ("ENVTIERS_CONDA_MIRRORS", "ENVTIERS_INDEX_URL", "ENVTIERS_SHIPPED_FILES"):
        env.pop(name, None)
    return subprocess.run(
        ["bash", "-c", " && ".join(commands)], cwd=package, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_bootstrap_builds_the_env_with_no_route_to_the_index(
    shippable: Shippable, s3: Any, tmp_path: Path, moto_url: str
) -> None:
    result = ship(shippable, s3)
    shippable.index.stop()  # from here on, nothing answers at the index URL the project names
    tier_commands = get_tier("pip").bootstrap_commands(shippable.project, "linux-64")
    commands = shipping.shipped_bootstrap(shippable.project, tier_commands, manifest=result.manifest_url)
    assert not any("http" in command for command in commands)
    done = run_bootstrap(shippable.project, commands, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "envtiers: fetched 4/4 files" in done.stderr
    package = tmp_path / "code-package"
    python = package / ".envtiers" / "env" / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import purepkg, platpkg; print(purepkg.__file__)"], capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    assert str(package / ".envtiers" / "env") in probe.stdout


def test_shipping_is_on_unless_the_project_or_the_environment_opts_out(
    shippable: Shippable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(shipping.OPT_OUT_VARIABLE, raising=False)
    assert shipping.shipping_enabled(shippable.project)
    settings = shippable.project.root / "envs" / "tiers.toml"
    settings.write_text(settings.read_text() + "\n[remote]\nship_environments = false\n")
    assert not shipping.shipping_enabled(load_project(shippable.project.root))
    monkeypatch.setenv(shipping.OPT_OUT_VARIABLE, "1")
    assert shipping.shipping_enabled(load_project(shippable.project.root))
    monkeypatch.setenv(shipping.OPT_OUT_VARIABLE, "0")
    assert not shipping.shipping_enabled(shippable.project)
    settings.write_text(settings.read_text().replace("= false", '= "no"'))
    monkeypatch.delenv(shipping.OPT_OUT_VARIABLE)
    with pytest.raises(InputError, match="ship_environments must be true or false"):
        shipping.shipping_enabled(load_project(shippable.project.root))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def test_the_conda_tier_ships_its_packages_and_builds_the_env_with_no_channel_or_index(
    s3: Any, tmp_path: Path, remote_index: PackageIndex, conda_channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An index and a channel of this test's own, stopped once the launcher has shipped.
    index = PackageIndex(remote_index.directory).start()
    channel = ChannelServer(conda_channel).start()
    try:
        root = write_remote_project(tmp_path / "project", index_url=index.url, tools=CONDA_TOOLS)
        add_remote_conda_tier(
            root, mirror=channel.url, environment="channels:\n  - conda-forge\ndependencies:\n  - python 3.11.*\n"
        )
        project = load_project(root, cache_dir=tmp_path / "cache")
        lock(project)
        lock_conda(project)
        # The launcher is a Mac: it ships linux-64's files without building anything for them.
        with monkeypatch.context() as mac:
            mac.setattr("envtiers.platforms.host_platform_name", lambda: "osx-arm64")
            key = shipping.remote_env_key(project, "conda", "linux-64")
            result = shipping.ship(project, root=ROOT, tier="conda", platform="linux-64", key=key, client=s3)
    finally:
        index.stop()
        channel.stop()
    _, conda_lock = read_lock(project, platform="linux-64")
    locked = {p.hash.sha256: p for p in conda_lock.package if p.platform == "linux-64"}
    objects = {key: body for key, body in stored(s3).items() if "/files/" in key}
    stored_hashes = {name.split("/")[-2] for name in objects}
    # Every file the conda lock installs on linux-64, conda packages and pip entries, once each.
    assert set(locked) <= stored_hashes
    assert len(stored_hashes) == len(objects) == len(result.files)
    for name, body in objects.items():
        assert hashlib.sha256(body).hexdigest() == name.split("/")[-2]
    conda_names = sorted(p.url.rsplit("/", 1)[1] for p in locked.values() if p.manager == "conda")
    assert sorted(f.filename for f in result.files if f.conda) == conda_names
    assert any(name.startswith("python-3.11") for name in conda_names)
    assert (shipping.ship(project, root=ROOT, tier="conda", platform="linux-64", key=key, client=s3).uploaded) == 0

    tier_commands = get_tier("conda").bootstrap_commands(project, "linux-64")
    commands = shipping.shipped_bootstrap(
        project, tier_commands, manifest=result.manifest_url, tier="conda", platform="linux-64"
    )
    assert not any(channel.url in command or index.url in command for command in commands)
    done = run_bootstrap(project, commands, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"envtiers: fetched {len(result.files)}/{len(result.files)} files" in done.stderr
    prefix = tmp_path / "code-package" / ".envtiers" / "env"
    # The interpreter is the locked conda package's, and the lock's pip entries are installed in it.
    records = [path.name for path in (prefix / "conda-meta").glob("python-3.11*.json")]
    assert records, sorted(p.name for p in (prefix / "conda-meta").iterdir())
    probe = subprocess.run(
        [str(prefix / "bin" / "python"), "-s", "-c", "import sys, purepkg; print(sys.prefix, purepkg.__version__)"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(prefix), "2.0"]
