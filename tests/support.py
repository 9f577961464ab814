"""Test support: tiny wheels and sdists built with zipfile/tarfile, a PEP 503 index serving them over
HTTP, and tiny projects that lock against it. Fixtures in conftest.py wrap these.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
# Fixed timestamps keep the built archives byte-for-byte reproducible.
_EPOCH = (2020, 1, 1, 0, 0, 0)

PURE = "py3-none-any"
MANYLINUX = "cp311-cp311-manylinux_2_17_x86_64"
MACOS_ARM = "cp311-cp311-macosx_11_0_arm64"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _metadata(name: str, version: str, requires: Iterable[str]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Requires-Python: >=3.8"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n"


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    tag: str = PURE,
    requires: Iterable[str] = (),
    extra_source: str = "",
) -> Path:
    """Write `name-version-tag.whl` to `dest`: an importable module exposing `__version__`."""
    dist_info = f"{name}-{version}.dist-info"
    purelib = "true" if tag == PURE else "false"
    files: dict[str, bytes] = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n{extra_source}'.encode(),
        f"{dist_info}/METADATA": _metadata(name, version, requires).encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: envtiers-tests\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"
        ).encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = dest / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=_EPOCH), data)
    return path


def build_sdist(dest: Path, name: str, version: str) -> Path:
    """Write `name-version.tar.gz` to `dest`: PKG-INFO, pyproject.toml, setup.py and the module."""
    base = f"{name}-{version}"
    files = {
        f"{base}/PKG-INFO": _metadata(name, version, ()),
        f"{base}/pyproject.toml": (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        ),
        f"{base}/setup.py": (
            f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, packages=[{name!r}])\n"
        ),
        f"{base}/{name}/__init__.py": f'__version__ = "{version}"\n',
    }
    path = dest / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1577836800
            archive.addfile(info, io.BytesIO(data))
    return path


def build_packages(dest: Path) -> None:
    """The scenario packages every index-backed test draws from."""
    dest.mkdir(parents=True, exist_ok=True)
    build_wheel(dest, "purepkg", "1.0")
    build_wheel(dest, "purepkg", "2.0")
    build_wheel(dest, "platpkg", "1.0", tag=MANYLINUX)
    build_wheel(dest, "platpkg", "1.0", tag=MACOS_ARM)
    build_sdist(dest, "sdistonly", "1.0")
    build_wheel(
        dest,
        "markerpkg",
        "1.0",
        requires=['linuxdep; sys_platform == "linux"', 'macdep; sys_platform == "darwin"'],
    )
    build_wheel(dest, "linuxdep", "1.0")
    build_wheel(dest, "macdep", "1.0")
    build_wheel(dest, "linuxonly", "1.0", tag=MANYLINUX)


def _project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return canonicalize_name(filename.split("-")[0])
    return canonicalize_name(filename.removesuffix(".tar.gz").rsplit("-", 1)[0])


class _IndexHandler(BaseHTTPRequestHandler):
    server: _IndexServer

    def do_HEAD(self) -> None:
        # uv probes wheels with HEAD for range-request support; answering without Accept-Ranges
        # makes it download the whole file, which is all this index offers.
        target = self.server.index.directory / self.path.removeprefix("/files/")
        if self.path.startswith("/files/") and target.is_file():
            self._send(200, b"", "application/octet-stream", length=target.stat().st_size)
        else:
            self._send(404, b"", "text/plain")

    def do_GET(self) -> None:
        index = self.server.index
        path = self.path.split("?", 1)[0]
        if path.startswith("/files/"):
            self._serve_file(index, path.removeprefix("/files/"))
        elif path == "/simple/":
            names = sorted({_project_of(f.name) for f in index.files()})
            links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names)
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), "text/html")
        elif path.startswith("/simple/") and path.endswith("/"):
            wanted = canonicalize_name(path.removeprefix("/simple/").strip("/"))
            # Hashes are computed per request, as a real index would serve whatever bytes it holds.
            links = "".join(
                f'<a href="/files/{html.escape(f.name)}#sha256={sha256_file(f)}">{html.escape(f.name)}</a>\n'
                for f in index.files()
                if _project_of(f.name) == wanted
            )
            if not links:
                self._send(404, b"not found", "text/plain")
                return
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), "text/html")
        else:
            self._send(404, b"not found", "text/plain")

    def _serve_file(self, index: PackageIndex, name: str) -> None:
        target = index.directory / name
        if "/" in name or not target.is_file():
            self._send(404, b"not found", "text/plain")
            return
        index.download_started.set()
        if index.stall_downloads:
            # Hold the download open until the test (or teardown) releases it.
            index.release.wait(timeout=120)
        self._send(200, target.read_bytes(), "application/octet-stream")

    def _send(self, status: int, body: bytes, content_type: str, *, length: int | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a killed uv): nothing to do

    def log_message(self, format: str, *args: object) -> None:
        pass


class _IndexServer(ThreadingHTTPServer):
    daemon_threads = True
    index: PackageIndex


@dataclass
class PackageIndex:
    """A PEP 503 simple index over `directory`, served on 127.0.0.1 until `stop()`."""

    directory: Path
    stall_downloads: bool = False
    download_started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _server: _IndexServer | None = None

    def start(self) -> PackageIndex:
        server = _IndexServer(("127.0.0.1", 0), _IndexHandler)
        server.index = self
        # A short poll interval keeps stop() (which waits for one poll) from adding half a second per index.
        threading.Thread(target=server.serve_forever, args=(0.05,), name="package-index", daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "index not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple"

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.endswith((".whl", ".tar.gz")))

    def file(self, name: str, version: str, tag: str = PURE) -> Path:
        return self.directory / f"{name}-{version}-{tag}.whl"


def closed_port_url() -> str:
    """An index URL on 127.0.0.1 where nothing listens (the port is bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"


def write_project(
    root: Path,
    *,
    requirements: str,
    index_url: str | None,
    platforms: Iterable[str] = ("linux-64", "osx-arm64"),
    python: str = "3.11",
    overrides: str | None = None,
    dev: str | None = None,
    tools: str | None = None,
) -> Path:
    """Write envs/tiers.toml and envs/requirements.in (plus the optional specs given) under `root`."""
    envs = root / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    optional = {
        "overrides": ("overrides.txt", overrides),
        "dev_spec": ("dev.in", dev),
        "tools_spec": ("tools.in", tools),
    }
    lines = ["[project]", f'python = "{python}"', f"platforms = {list(platforms)!r}".replace("'", '"'), "", "[pip]"]
    if index_url is not None:
        lines.append(f'index_url = "{index_url}"')
    for key, (filename, content) in optional.items():
        if content is None:
            lines.append(f'{key} = ""')
        else:
            lines.append(f'{key} = "{filename}"')
            (envs / filename).write_text(content)
    (envs / "tiers.toml").write_text("\n".join(lines) + "\n")
    (envs / "requirements.in").write_text(requirements)
    return root


def run_cli(
    root: Path | None, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m envtiers [--project root] args...` in a subprocess, as a user runs it."""
    command = [sys.executable, "-m", "envtiers"]
    if root is not None:
        command += ["--project", str(root)]
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        [*command, *args], env=full_env, capture_output=True, text=True, timeout=timeout, cwd=root or REPO_ROOT
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (relative path -> (bytes, mtime_ns)): compare before and after."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def wheel_from_installed(dest: Path, name: str, *, binaries: bool = False) -> Path:
    """Repack an installed distribution (from the interpreter running the tests) as a wheel.

    Lets the local index serve real packages, such as Metaflow and requests, without a network:
    the files, metadata and tags are those pip installed, re-zipped with a fresh RECORD.
    `binaries`: also carry the files installed into bin/ (uv's binary), as .data/scripts.
    """
    from importlib.metadata import distribution

    dist = distribution(name)
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    pythons, abis, plats = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    filename_tag = "-".join(".".join(part) for part in (pythons, abis, plats))
    dist_name = dist.metadata["Name"].replace("-", "_")
    base = Path(str(dist.locate_file("")))
    files: dict[str, bytes] = {}
    for entry in dist.files or ():
        path = str(entry)
        if path.startswith("../../../bin/") and binaries:
            # A binary the wheel installs as a script (uv's `uv`): back into the wheel's .data/scripts.
            files[f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.data/scripts/{Path(path).name}"] = (
                base / path
            ).read_bytes()
            continue
        if path.startswith("..") or "__pycache__" in path or path.endswith((".pyc", "RECORD", "INSTALLER")):
            continue
        if path.endswith("direct_url.json") or path.endswith("REQUESTED"):
            continue
        files[path] = (base / path).read_bytes()
    dist_info = next(p.split("/")[0] for p in files if p.split("/")[0].endswith(".dist-info"))
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    out = dest / f"{dist_name}-{dist.version}-{filename_tag}.whl"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in sorted(files.items()):
            info = zipfile.ZipInfo(member, date_time=_EPOCH)
            if ".data/scripts/" in member:
                info.external_attr = 0o100755 << 16  # installers keep the executable bit
            archive.writestr(info, data)
    return out
