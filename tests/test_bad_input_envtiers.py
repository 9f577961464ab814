"""The bad-input matrix for envtiers: every user mistake is one `envtiers: error:` line and a
`fix:` line (or, for `check`, each problem with its fix), the documented exit code (2: bad input,
1: inconsistent or failed), no traceback, and nothing written in the project.

Each case copies a project locked once per module (pip tier, and pip + conda tier) into tmp_path,
breaks one thing, and runs the CLI in-process (`envtiers.cli.run`), as `python -m envtiers` would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envtiers.cli import run
from envtiers.conda.locker import lock as lock_conda
from envtiers.pip.locker import lock as lock_pip
from envtiers.platforms import host_platform_name
from envtiers.settings import load_project
from tests.conda.support import add_conda_tier
from tests.support import PackageIndex, closed_port_url, write_project

PIP_LOCK = "lockfiles/pip/linux-64.txt"
CONDA_LOCK = "lockfiles/conda-lock.yml"
IMAGE_RECORD = "lockfiles/image.json"
GOOD_RECORD = {
    "format-version": 1,
    "repository": "registry.example.com/team/detector",
    "tag": "0" * 24,
    "digest": "sha256:" + "ee" * 32,
    "lock-hash": "sha256:" + "00" * 32,
    "base-digest": "sha256:" + "ab" * 32,
}


def _locked_template(
    factory: pytest.TempPathFactory, index: PackageIndex, channel: Path | None, name: str
) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        work = factory.mktemp(name)
        patch.setenv("UV_CACHE_DIR", str(work / "uv-cache"))
        patch.setenv("UV_NO_CONFIG", "1")
        patch.delenv("ENVTIERS_CONDA_MIRRORS", raising=False)
        root = write_project(work / "project", requirements="purepkg\nplatpkg\n", index_url=index.url)
        if channel is not None:
            add_conda_tier(root, mirror=channel.as_uri())
        project = load_project(root, cache_dir=work / "cache")
        lock_pip(project)
        if channel is not None:
            lock_conda(project)
        yield root


@pytest.fixture(scope="module")
def pip_template(tmp_path_factory: pytest.TempPathFactory, package_index: PackageIndex) -> Iterator[Path]:
    yield from _locked_template(tmp_path_factory, package_index, None, "bad-input-pip")


@pytest.fixture(scope="module")
def conda_template(
    tmp_path_factory: pytest.TempPathFactory, package_index: PackageIndex, conda_channel: Path
) -> Iterator[Path]:
    yield from _locked_template(tmp_path_factory, package_index, conda_channel, "bad-input-conda")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under `folder`, with mtimes folded into the bytes."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_dir() and not path.is_symlink():
            found[key] = None
        else:
            found[key] = path.read_bytes() + str(path.lstat().st_mtime_ns).encode()
    return found


# -- how each case breaks the project -------------------------------------------------------------


def settings(text: str, *, replace: str | None = None) -> Callable[[Path], None]:
    """Append `text` to envs/tiers.toml, or replace `replace` in it with `text`."""

    def change(root: Path) -> None:
        path = root / "envs" / "tiers.toml"
        old = path.read_text()
        path.write_text(old.replace(replace, text) if replace is not None else old + text)

    return change


def write(relative: str, content: str | bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return change


def edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    return change


def remove(relative: str) -> Callable[[Path], None]:
    return lambda root: (root / relative).unlink()


def make_folder(relative: str, *, with_file: str | None = None) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / relative
        if path.is_file():
            path.unlink()
        path.mkdir(parents=True, exist_ok=True)
        if with_file:
            (path / with_file).write_text("a user's file\n")

    return change


def record(**changes: object) -> Callable[[Path], None]:
    data: object = {**GOOD_RECORD, **changes} if changes.get("_raw") is None else changes["_raw"]
    return write(IMAGE_RECORD, data if isinstance(data, str) else json.dumps(data))


def nothing(root: Path) -> None:
    return None


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    change: Callable[[Path], None]
    code: int
    message: str  # expected in the error (or problem) text
    project: str = "pip"  # pip | conda
    check_report: bool = False  # `check`'s own report (path: problem + fix) instead of one error line


CASES = [
    # -- settings: envs/tiers.toml ------------------------------------------------------------------
    Case(
        "settings-spec-number",
        ("check",),
        settings("[pip]\nspec = 5\n", replace="[pip]\n"),
        2,
        "[pip] spec must be a string",
    ),
    Case(
        "settings-find-links-number",
        ("check",),
        settings("[pip]\nfind_links = 5\n", replace="[pip]\n"),
        2,
        "[pip] find_links must be a list of strings",
    ),
    Case(
        "settings-index-url-number",
        ("lock",),
        edit("envs/tiers.toml", 'index_url = "', 'index_url = 5 # "'),
        2,
        "[pip] index_url must be a string",
    ),
    Case(
        "settings-cuda-not-a-table",
        ("check",),
        settings('cuda = "12"\n', replace="[project]\n"),
        2,
        "[cuda] must be a table",
    ),
    Case(
        "settings-python-float",
        ("check",),
        edit("envs/tiers.toml", 'python = "3.11"', "python = 3.10"),
        2,
        "project.python must look like '3.11', got 3.1 (a TOML number",
    ),
    Case(
        "settings-python-word",
        ("check",),
        edit("envs/tiers.toml", 'python = "3.11"', 'python = "three"'),
        2,
        "project.python must look like '3.11', got 'three'",
    ),
    Case("settings-pip-not-a-table", ("check",), write("envs/tiers.toml", 'pip = "x"\n'), 2, "[pip] must be a table"),
    Case("settings-invalid-toml", ("check",), write("envs/tiers.toml", "[project\n"), 2, "is not valid TOML"),
    Case(
        "settings-not-utf8",
        ("check",),
        write("envs/tiers.toml", b'[project]\npython = "3.11\xff"\n'),
        2,
        "is not UTF-8 text",
    ),
    Case("settings-is-a-folder", ("check",), make_folder("envs/tiers.toml"), 2, "envs/tiers.toml is a folder"),
    Case(
        "settings-unknown-platform",
        ("check",),
        edit("envs/tiers.toml", '"osx-arm64"', '"win-64"'),
        2,
        "unknown platform(s) ['win-64']",
    ),
    Case(
        "settings-no-platform",
        ("check",),
        edit("envs/tiers.toml", '["linux-64", "osx-arm64"]', "[]"),
        2,
        "unknown platform(s) (none listed)",
    ),
    Case(
        "settings-platforms-string",
        ("check",),
        edit("envs/tiers.toml", '["linux-64", "osx-arm64"]', '"linux-64"'),
        2,
        "[project] platforms must be a list of strings",
    ),
    Case(
        "settings-image-code-string",
        ("check",),
        settings('\n[image]\ncode = "detector"\n'),
        2,
        "[image] code must be a list of strings",
    ),
    Case(
        "settings-flow-include-string",
        ("check",),
        settings('\n[flow]\ninclude = "detector"\n'),
        2,
        "[flow] include must be a list of strings",
    ),
    Case(
        "settings-conda-environment-number",
        ("check",),
        settings("environment = 5\n", replace='environment = "environment.yml"\n'),
        2,
        "[conda] environment must be a string",
        project="conda",
    ),
    Case(
        "settings-virtual-packages-string",
        ("check",),
        edit("envs/tiers.toml", 'linux-64 = { __glibc = "2.28", __unix = "0", __linux = "0" }', 'linux-64 = "2.28"'),
        2,
        "[conda.virtual_packages] linux-64 must map names like __glibc",
        project="conda",
    ),
    Case(
        "settings-mirror-number",
        ("check",),
        edit("envs/tiers.toml", 'conda-forge = "file:', "conda-forge = 5 #"),
        2,
        "[conda.mirrors] must map channel names",
        project="conda",
    ),
    Case(
        "settings-mirror-missing-folder",
        ("lock", "--tier", "conda", "--force"),
        edit("envs/tiers.toml", 'conda-forge = "file:', 'conda-forge = "no-such-folder" #'),
        2,
        "the conda mirror folder no-such-folder does not exist",
        project="conda",
    ),
    # -- specs: envs/requirements.in ----------------------------------------------------------------
    Case(
        "spec-garbage-line",
        ("check",),
        write("envs/requirements.in", "purepkg\n!!! what\n"),
        2,
        "envs/requirements.in:2",
    ),
    Case(
        "spec-marker-typo",
        ("check",),
        write("envs/requirements.in", 'purepkg; sys_platfrom == "linux"\n'),
        2,
        "envs/requirements.in:1",
    ),
    Case("spec-not-utf8", ("check",), write("envs/requirements.in", b"purepkg\n\xff\n"), 2, "envs/requirements.in"),
    Case("spec-is-a-folder", ("check",), make_folder("envs/requirements.in"), 2, "envs/requirements.in"),
    Case(
        "spec-option-line",
        ("check",),
        write("envs/requirements.in", "-r other.in\n"),
        2,
        "options like '-r' are not allowed in a spec",
    ),
    Case("spec-missing", ("check",), remove("envs/requirements.in"), 2, "envs/requirements.in"),
    Case(
        "spec-garbage-lock",
        ("lock", "--force"),
        write("envs/requirements.in", "purepkg\n!!! what\n"),
        2,
        "envs/requirements.in:2",
    ),
    # -- environment.yml ----------------------------------------------------------------------------
    Case(
        "environment-invalid-yaml",
        ("check",),
        write("envs/environment.yml", "channels: [conda-forge\n"),
        2,
        "envs/environment.yml is not valid YAML",
        project="conda",
    ),
    Case(
        "environment-bad-match-spec",
        ("check",),
        edit("envs/environment.yml", "- condapkg", "- 'condapkg >>1'"),
        2,
        "is not a valid conda match spec",
        project="conda",
    ),
    Case(
        "environment-top-level-list",
        ("check",),
        write("envs/environment.yml", "- python\n- pip\n"),
        2,
        "must be a mapping with channels and dependencies",
        project="conda",
    ),
    Case(
        "environment-pip-section",
        ("check",),
        edit("envs/environment.yml", "- condapkg", "- pip:\n    - purepkg"),
        2,
        "a pip: section is not used by the conda tier",
        project="conda",
    ),
    Case(
        "environment-no-channels",
        ("check",),
        edit("envs/environment.yml", "  - conda-forge\n", ""),
        2,
        "channels must be a non-empty list",
        project="conda",
    ),
    Case(
        "environment-not-utf8",
        ("check",),
        write("envs/environment.yml", b"channels: [conda-forge]\n\xff\n"),
        2,
        "envs/environment.yml",
        project="conda",
    ),
    # -- the pip lock -------------------------------------------------------------------------------
    Case(
        "pip-lock-wildcard-pin",
        ("check",),
        edit(PIP_LOCK, "purepkg==2.0", "purepkg==2.*"),
        1,
        "purepkg==2.* is not one exact version",
        check_report=True,
    ),
    Case(
        "pip-lock-edited-version",
        ("check",),
        edit(PIP_LOCK, "purepkg==2.0", "purepkg==1.0"),
        1,
        "content does not match its recorded digest",
        check_report=True,
    ),
    Case(
        "pip-lock-truncated",
        ("check",),
        edit(PIP_LOCK, "# body-sha256", "# truncated"),
        1,
        "damaged header",
        check_report=True,
    ),
    Case("pip-lock-missing", ("check",), remove(PIP_LOCK), 1, "does not exist", check_report=True),
    Case(
        "pip-lock-newer-format",
        ("check",),
        edit(PIP_LOCK, "# format-version: 1", "# format-version: 99"),
        2,
        "has format version 99",
        check_report=True,
    ),
    Case(
        "pip-lock-not-utf8",
        ("check",),
        write(PIP_LOCK, b"# envtiers pip lock\n\xff\n"),
        1,
        "cannot be read",
        check_report=True,
    ),
    Case("pip-lock-is-a-folder", ("check",), make_folder(PIP_LOCK), 1, "cannot be read", check_report=True),
    Case(
        "pip-lock-edited-env-create",
        ("env", "create", "--platform", "linux-64"),
        edit(PIP_LOCK, "purepkg==2.0", "purepkg==1.0"),
        2,
        "was edited after locking",
    ),
    Case(
        "pip-lock-not-a-lock-env-create",
        ("env", "create", "--platform", "linux-64"),
        write(PIP_LOCK, "purepkg==2.0\n"),
        1,
        "has no envtiers header",
    ),
    # -- the conda lock -----------------------------------------------------------------------------
    Case(
        "conda-lock-sha256-edit",
        ("check", "--tier", "conda"),
        edit(CONDA_LOCK, "sha256: ", "sha256: 0000"),
        1,
        "do not match their recorded digest",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-version-edit",
        ("check", "--tier", "conda"),
        edit(CONDA_LOCK, "version: '1.0'", "version: '9.9'"),
        1,
        "do not match their recorded digest",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-unparsable-url",
        ("check", "--tier", "conda"),
        edit(CONDA_LOCK, "condapkg-1.0-", "garbage"),
        1,
        "names no conda package file",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-invalid-yaml",
        ("check", "--tier", "conda"),
        write(CONDA_LOCK, "version: [1\n"),
        1,
        "is not valid YAML",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-top-level-list",
        ("check", "--tier", "conda"),
        write(CONDA_LOCK, "- 1\n"),
        1,
        "cannot be read as a conda-lock file",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-newer-format",
        ("check", "--tier", "conda"),
        edit(CONDA_LOCK, "envtiers-format-version: '2'", "envtiers-format-version: '99'"),
        2,
        "format version 99",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-missing",
        ("check", "--tier", "conda"),
        remove(CONDA_LOCK),
        1,
        "is missing",
        project="conda",
        check_report=True,
    ),
    Case(
        "conda-lock-edited-env-create",
        ("env", "create", "--tier", "conda", "--platform", "linux-64"),
        edit(CONDA_LOCK, "sha256: ", "sha256: 0000"),
        2,
        "was edited after locking",
        project="conda",
    ),
    # -- the image record ---------------------------------------------------------------------------
    Case(
        "image-record-invalid-json",
        ("check", "--tier", "image"),
        record(_raw="{not json"),
        1,
        "is not valid JSON",
        check_report=True,
    ),
    Case(
        "image-record-a-list",
        ("check", "--tier", "image"),
        record(_raw="[1, 2]"),
        1,
        "is not a JSON object",
        check_report=True,
    ),
    Case(
        "image-record-newer-format",
        ("check", "--tier", "image"),
        record(**{"format-version": 99}),
        2,
        "has format version 99",
        check_report=True,
    ),
    Case(
        "image-record-bad-digest",
        ("check", "--tier", "image"),
        record(digest="latest"),
        1,
        "is not sha256:<64 hex>",
        check_report=True,
    ),
    Case(
        "image-record-missing-key",
        ("check", "--tier", "image"),
        record(repository=""),
        1,
        "missing or empty 'repository'",
        check_report=True,
    ),
    Case("image-record-stale", ("check", "--tier", "image"), record(), 1, "image is stale", check_report=True),
    # -- environments and CLI options ---------------------------------------------------------------
    Case("cli-unknown-command", ("frobnicate",), nothing, 2, "invalid choice: 'frobnicate'"),
    Case("cli-lock-image-tier", ("lock", "--tier", "image"), nothing, 2, "invalid choice: 'image'"),
    Case("cli-check-unknown-tier", ("check", "--tier", "nope"), nothing, 2, "invalid choice: 'nope'"),
    Case("cli-env-missing-subcommand", ("env",), nothing, 2, "the following arguments are required"),
    Case("cli-env-other-platform", ("env", "create", "--platform", "win-64"), nothing, 2, "win-64"),
    Case(
        "cli-conda-dev",
        ("env", "create", "--tier", "conda", "--dev"),
        nothing,
        2,
        "--dev and --link-project apply to the pip tier only",
        project="conda",
    ),
    Case(
        "cli-conda-lock-platform",
        ("lock", "--tier", "conda", "--platform", "linux-64"),
        nothing,
        2,
        "--platform does not apply",
        project="conda",
    ),
    Case(
        "cli-export-unknown-platform",
        ("export", "--platform", "win-64"),
        nothing,
        2,
        "win-64 is not a platform of this project",
    ),
    Case(
        "env-target-user-folder",
        ("env", "create", "--platform", "linux-64", "--target", "mine"),
        make_folder("mine", with_file="notes.txt"),
        2,
        "is not an envtiers environment",
    ),
    Case(
        "env-target-user-file",
        ("env", "create", "--platform", "linux-64", "--target", "notes.txt"),
        write("notes.txt", "a user's file\n"),
        2,
        "is not an envtiers environment",
    ),
    Case(
        "env-path-unfinished",
        ("env", "path", "--platform", "linux-64", "--target", "half"),
        make_folder("half", with_file="bin-is-missing"),
        2,
        "was never finished",
    ),
    # -- network faults (the index given on the command line) -----------------------------------------
    Case(
        "network-dead-port",
        ("--index-url", "DEAD", "lock", "--force"),
        nothing,
        1,
        "the package index could not be reached",
    ),
    Case(
        "network-404-index",
        ("--index-url", "NOTFOUND", "lock", "--force"),
        nothing,
        1,
        "answers HTTP 404: it is not a package index",
    ),
    Case(
        "network-stalled-index",
        ("--index-url", "STALLED", "lock", "--force"),
        nothing,
        1,
        "the package index could not be reached",
    ),
]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """A URL that answers 404 to everything, and one that accepts connections and never answers."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    not_found = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=not_found.serve_forever, args=(0.05,), daemon=True).start()
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(64)  # never accepted: the client's request is never answered
    yield {
        "DEAD": closed_port_url(),
        "NOTFOUND": f"http://127.0.0.1:{not_found.server_address[1]}/simple",
        "STALLED": f"http://127.0.0.1:{stalled.getsockname()[1]}/simple",
    }
    not_found.shutdown()
    not_found.server_close()
    stalled.close()


def run_case(case: Case, root: Path, capsys: pytest.CaptureFixture[str], servers: dict[str, str]) -> None:
    argv = [servers.get(arg, arg) for arg in case.argv]
    before = tree(root)
    code = run(["--project", str(root), *argv])
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text, text
    assert code == case.code, text
    if case.check_report:
        problems = [line for line in out.splitlines() if not line.startswith(" ")][:-1]
        assert problems and any(case.message in line for line in problems), text
        assert out.count("\n  fix: ") == len(problems), text
        assert "envtiers: error:" not in text
    else:
        lines = err.splitlines()
        errors = [i for i, line in enumerate(lines) if line.startswith("envtiers: error:")]
        assert len(errors) == 1, text
        assert case.message in lines[errors[0]], text
        assert errors[0] + 1 < len(lines) and lines[errors[0] + 1].startswith("  fix: "), text
    assert tree(root) == before, "the project changed"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(
    case: Case,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    servers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if case.argv[:2] == ("env", "create") and host_platform_name() != "linux-64" and "--target" not in case.argv:
        pytest.skip("the env cases name linux-64 as the host")
    template = request.getfixturevalue(f"{case.project}_template")
    root = tmp_path / "project"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "3")  # the stalled index: uv gives up after 3 s
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    case.change(root)
    run_case(case, root, capsys, servers)


def test_the_matrix_is_large_enough() -> None:
    assert len(CASES) >= 50


def test_a_spec_with_a_bom_and_a_settings_typo_still_work(
    pip_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "project"
    shutil.copytree(pip_template, root, symlinks=True)
    spec = root / "envs" / "requirements.in"
    spec.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes())
    settings("[pip]\nfnd_links = []\n", replace="[pip]\n")(root)

    code = run(["--project", str(root), "check"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "unknown key 'fnd_links' in [pip] is ignored (did you mean 'find_links'?)" in caplog.text + err


def _can_mount_tmpfs(where: Path) -> str | None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a tmpfs needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)], capture_output=True, text=True
    )
    return None if done.returncode == 0 else f"mount is not allowed here: {done.stderr.strip()}"


@pytest.mark.parametrize("what", ["lock", "env"])
def test_a_full_disk_is_an_error_with_the_fix(
    what: str, pip_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    reason = _can_mount_tmpfs(disk)
    if reason is not None:
        pytest.skip(reason)  # CI runs as root, where mount works: the cases run there
    try:
        if what == "lock":
            root = disk / "project"
            shutil.copytree(pip_template, root, symlinks=True)
            argv = ["--project", str(root), "lock", "--force"]
        else:
            root = tmp_path / "project"
            shutil.copytree(pip_template, root, symlinks=True)
            monkeypatch.setenv("ENVTIERS_CACHE_DIR", str(disk / "cache"))
            argv = ["--project", str(root), "env", "create", "--platform", host_platform_name()]
        descriptor = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill what is left, to the last block
            while os.write(descriptor, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(descriptor)
        before = tree(root)
        code = run(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert code in (1, 2), err
        lines = err.splitlines()
        errors = [i for i, line in enumerate(lines) if line.startswith("envtiers: error:")]
        assert len(errors) == 1 and "o space left on device" in lines[errors[0]], err
        assert lines[errors[0] + 1].startswith("  fix: free some space"), err
        assert tree(root) == before
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
