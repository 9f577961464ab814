"""A real local conda channel for the conda tier's tests, built as ../shared/reference/conda-offline.md
describes: an interpreter package made from this machine's CPython (RUNPATHs made relative with
patchelf), noarch python packages made from wheels (pip included), and a metadata-only osx-arm64
interpreter so multi-platform solving runs for real. Indexed with py-rattler; served as file:// and
over http on 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from envtiers.conda import rattler

PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
PYVER = "{}.{}".format(*sys.version_info[:2])
# Left out of the interpreter package: big, and nothing the tests run needs them.
_SKIP_DIRS = {
    "site-packages",
    "test",
    "tests",
    "__pycache__",
    "tkinter",
    "idlelib",
    "turtledemo",
    "ensurepip",
    "lib2to3",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_info(
    stage: Path,
    index: dict[str, object],
    *,
    prefix_files: Iterable[str] = (),
    placeholder: str = "",
    link: dict[str, object] | None = None,
) -> list[str]:
    """Write info/ for the files under `stage`; returns every member path (files and info/)."""
    members = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if (p.is_file() or p.is_symlink()))
    members = [m for m in members if not m.startswith("info/")]
    text_files = set(prefix_files)
    paths = []
    for member in members:
        path = stage / member
        if path.is_symlink():
            paths.append(
                {
                    "_path": member,
                    "path_type": "softlink",
                    "sha256": hashlib.sha256(os.readlink(path).encode()).hexdigest(),
                    "size_in_bytes": 0,
                }
            )
            continue
        entry: dict[str, object] = {
            "_path": member,
            "path_type": "hardlink",
            "sha256": _sha256(path),
            "size_in_bytes": path.stat().st_size,
        }
        if member in text_files:
            entry.update(file_mode="text", prefix_placeholder=placeholder)
        paths.append(entry)
    info = stage / "info"
    info.mkdir(exist_ok=True)
    (info / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    (info / "paths.json").write_text(json.dumps({"paths": paths, "paths_version": 1}, indent=2))
    (info / "files").write_text("".join(m + "\n" for m in members))
    if text_files:
        (info / "has_prefix").write_text("".join(f"{placeholder} text {m}\n" for m in sorted(text_files)))
    if link is not None:
        (info / "link.json").write_text(json.dumps(link))
    return [*members, *sorted(str(p.relative_to(stage)) for p in info.rglob("*") if p.is_file())]


def _create(stage: Path, members: list[str], out_dir: Path, file_name: str) -> Path:
    from conda_package_handling import api

    out_dir.mkdir(parents=True, exist_ok=True)
    # compression_threads=0: zstd's single-threaded path. Once TensorFlow is imported in the same
    # process (the suite collects it), its bundled libzstd, built without threads, serves the
    # symbols and refuses nb_workers=1 ("valid range is [0, 0]").
    api.create(str(stage), members, file_name, str(out_dir), compression_level=3, compression_threads=0)
    return out_dir / file_name


def build_python(channel: Path, work: Path) -> Path:
    """linux-64 `python PYTHON_VERSION` from sys.base_prefix, relocatable."""
    base = Path(sys.base_prefix)
    stage = work / "python"
    (stage / "bin").mkdir(parents=True)
    shutil.copy2(base / "bin" / f"python{PYVER}", stage / "bin" / f"python{PYVER}")
    os.symlink(f"python{PYVER}", stage / "bin" / "python3")
    os.symlink(f"python{PYVER}", stage / "bin" / "python")
    (stage / "lib").mkdir()
    for lib in base.joinpath("lib").glob("libpython3*.so*"):
        if lib.is_symlink():
            os.symlink(os.readlink(lib), stage / "lib" / lib.name)
        else:
            shutil.copy2(lib, stage / "lib" / lib.name)
    stdlib = base / "lib" / f"python{PYVER}"
    target = stage / "lib" / f"python{PYVER}"
    shutil.copytree(
        stdlib,
        target,
        symlinks=True,
        ignore=lambda folder, names: [n for n in names if n in _SKIP_DIRS or n.endswith((".a", ".pyc"))],
    )
    (target / "site-packages").mkdir()
    (target / "site-packages" / "README.txt").write_text("third-party packages go here\n")
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../lib", str(stage / "bin" / f"python{PYVER}")], check=True)
    for ext in (target / "lib-dynload").glob("*.so"):
        subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../..", str(ext)], check=True)
    # Only text files are prefix files: a binary placeholder longer than the new prefix makes
    # rattler refuse the install (conda-offline.md's pitfall).
    marker = str(base).encode()
    prefix_files = []
    for path in target.rglob("*"):
        if path.is_file() and not path.is_symlink() and not path.name.endswith(".so"):
            data = path.read_bytes()
            if marker in data and b"\0" not in data:
                prefix_files.append(str(path.relative_to(stage)))
    build = "h0_cpython"
    index = {
        "name": "python",
        "version": PYTHON_VERSION,
        "build": build,
        "build_number": 0,
        "subdir": "linux-64",
        "arch": "x86_64",
        "platform": "linux",
        "depends": ["__glibc >=2.17"],
        "license": "PSF-2.0",
    }
    members = _write_info(stage, index, prefix_files=prefix_files, placeholder=str(base))
    return _create(stage, members, channel / "linux-64", f"python-{PYTHON_VERSION}-{build}.conda")


def build_stub(channel: Path, work: Path, *, name: str, version: str, subdir: str, depends: list[str]) -> Path:
    """A metadata-only package (no files): enough to solve for a platform this host cannot run."""
    stage = work / f"stub-{name}-{subdir}"
    stage.mkdir(parents=True)
    index = {
        "name": name,
        "version": version,
        "build": "h0_stub",
        "build_number": 0,
        "subdir": subdir,
        "depends": depends,
    }
    members = _write_info(stage, index)
    return _create(stage, members, channel / subdir, f"{name}-{version}-h0_stub.conda")


def build_noarch_from_wheel(channel: Path, work: Path, wheel: Path, *, depends: list[str]) -> Path:
    """A `noarch: python` package with the wheel's files under site-packages/."""
    name, version = wheel.name.split("-")[:2]
    conda_name = name.lower().replace("_", "-")
    stage = work / f"noarch-{conda_name}"
    (stage / "site-packages").mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(stage / "site-packages")
    index = {
        "name": conda_name,
        "version": version,
        "build": "py_0",
        "build_number": 0,
        "subdir": "noarch",
        "noarch": "python",
        "depends": depends,
    }
    link = {"noarch": {"type": "python"}, "package_metadata_version": 1}
    members = _write_info(stage, index, link=link)
    return _create(stage, members, channel / "noarch", f"{conda_name}-{version}-py_0.conda")


@functools.cache
def _pip_wheel() -> Path:
    bundled = Path(sysconfig.get_paths()["stdlib"]) / "ensurepip" / "_bundled"
    return next(bundled.glob("pip-*.whl"))


def build_channel(channel: Path, work: Path, *, extra_wheels: Iterable[Path] = ()) -> Path:
    """Every package of the test channel, indexed. Returns `channel`."""
    build_python(channel, work)
    build_stub(channel, work, name="python", version=PYTHON_VERSION, subdir="osx-arm64", depends=["__osx >=11.0"])
    build_noarch_from_wheel(channel, work, _pip_wheel(), depends=[f"python >={PYVER}"])
    for wheel in extra_wheels:
        build_noarch_from_wheel(channel, work, wheel, depends=[f"python >={PYVER}"])
    rattler.index(channel)
    return channel


@dataclass
class ChannelServer:
    """`directory` served read-only over http on 127.0.0.1 until `stop()`."""

    directory: Path
    _server: ThreadingHTTPServer | None = None

    def start(self) -> ChannelServer:
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
