"""`python -m detector fetch`: against a small archive served on 127.0.0.1 (GitHub's layout: one
top folder), a server that honours Range requests and can cut a response short."""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from detector.errors import ChecksumError, FetchError, InputError
from detector.fetch import FETCH_RECORD, fetch_dataset

REPO = Path(__file__).resolve().parents[2]
TOP = "PlantDoc-Object-Detection-Dataset-b479f7232dd7af2060920e49359142904fe15273"


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# Incompressible image bytes, so the archive is big enough to be cut in the middle of a member.
DATASET = {
    "README.md": b"PlantDoc\n",
    "train_labels.csv": b"filename,width,height,class,xmin,ymin,xmax,ymax\n",
    "test_labels.csv": b"filename,width,height,class,xmin,ymin,xmax,ymax\n",
    "TRAIN/a.xml": b"<annotation/>",
    "TRAIN/a.jpg": random.Random(1).randbytes(120_000),
    "TEST/b.jpg": random.Random(2).randbytes(120_000),
}
ARCHIVE = _archive(DATASET)
DIGEST = hashlib.sha256(ARCHIVE).hexdigest()


class Server:
    """Serves ``body`` at /archive.tar.gz; ``cut_at`` ends the first response after that many bytes."""

    def __init__(self) -> None:
        self.body = ARCHIVE
        self.cut_at: int | None = None
        self.honour_range = True
        self.requests: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.headers.get("Range"))
                body, start = owner.body, 0
                wanted = self.headers.get("Range")
                if wanted and owner.honour_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if owner.cut_at is not None:
                    chunk, owner.cut_at = chunk[: owner.cut_at], None
                    self.close_connection = True
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server()
    yield served
    served.close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fetch_verifies_unpacks_and_records_the_source(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "data" / "plantdoc"
    fetched = fetch_dataset("plantdoc", out=out, url=server.url, sha256=DIGEST)
    assert fetched.verified and fetched.sha256 == DIGEST and fetched.downloaded_bytes == len(ARCHIVE)
    for name, data in DATASET.items():
        assert (out / name).read_bytes() == data
    assert _leftovers(out.parent) == ["plantdoc"]  # no .part, no temporary folder
    assert f'"sha256": "{DIGEST}"' in (out / FETCH_RECORD).read_text()
    again = fetch_dataset("plantdoc", out=out, url=server.url, sha256=DIGEST)
    assert again.downloaded_bytes == 0 and len(server.requests) == 1  # already there: not downloaded again


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ChecksumError) as caught:
        fetch_dataset("plantdoc", out=tmp_path / "plantdoc", url=server.url, sha256="0" * 64)
    assert DIGEST in caught.value.headline and "0" * 64 in caught.value.headline
    assert _leftovers(tmp_path) == []


def test_truncated_download_fails_then_resumes_with_a_range_request(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "plantdoc"
    server.cut_at = len(ARCHIVE) // 2
    with pytest.raises(FetchError) as caught:
        fetch_dataset("plantdoc", out=out, url=server.url, sha256=DIGEST)
    assert f"stopped at {len(ARCHIVE) // 2:,} of {len(ARCHIVE):,} bytes" in caught.value.headline
    assert "resumes" in (caught.value.fix or "")
    assert not out.exists() and [p.suffix for p in tmp_path.iterdir()] == [".part"]

    fetched = fetch_dataset("plantdoc", out=out, url=server.url, sha256=DIGEST)
    assert server.requests == [None, f"bytes={len(ARCHIVE) // 2}-"]
    assert fetched.resumed_from == len(ARCHIVE) // 2 and fetched.downloaded_bytes == len(ARCHIVE) - len(ARCHIVE) // 2
    assert (out / "TEST" / "b.jpg").read_bytes() == DATASET["TEST/b.jpg"]
    assert _leftovers(tmp_path) == ["plantdoc"]


def test_a_server_ignoring_range_sends_it_all_again(server: Server, tmp_path: Path) -> None:
    server.cut_at, server.honour_range = 1000, False
    with pytest.raises(FetchError):
        fetch_dataset("plantdoc", out=tmp_path / "plantdoc", url=server.url, sha256=DIGEST)
    fetched = fetch_dataset("plantdoc", out=tmp_path / "plantdoc", url=server.url, sha256=DIGEST)
    assert fetched.resumed_from == 0 and fetched.verified


def test_interrupted_unpack_leaves_neither_target_nor_temporary_folder(server: Server, tmp_path: Path) -> None:
    # An archive whose bytes match the digest but end in the middle of a member: unpacking starts,
    # writes some files into the temporary folder, then fails.
    server.body = ARCHIVE[: len(ARCHIVE) * 2 // 3]
    broken = hashlib.sha256(server.body).hexdigest()
    out = tmp_path / "plantdoc"
    with pytest.raises(FetchError, match="does not unpack"):
        fetch_dataset("plantdoc", out=out, url=server.url, sha256=broken)
    assert not out.exists()
    assert not list(tmp_path.glob(".plantdoc-unpack-*"))


def test_an_existing_copy_is_kept_until_the_new_one_is_complete(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "plantdoc"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="already exists"):
        fetch_dataset("plantdoc", out=out, url=server.url, sha256=DIGEST)
    server.body = ARCHIVE[:4000]
    with pytest.raises(FetchError):
        fetch_dataset("plantdoc", out=out, url=server.url, sha256=hashlib.sha256(server.body).hexdigest(), force=True)
    assert (out / "mine.txt").read_text() == "keep"
    server.body = ARCHIVE
    fetch_dataset("plantdoc", out=out, url=server.url, sha256=DIGEST, force=True)
    assert not (out / "mine.txt").exists() and (out / "TRAIN" / "a.xml").is_file()
    assert _leftovers(tmp_path) == ["plantdoc"]


def test_the_cli_fetches_with_a_progress_line_and_says_when_nothing_was_verified(
    server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "plantdoc"
    command = [sys.executable, "-m", "detector", "fetch", "plantdoc", "--out", str(out), "--url", server.url]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(100%)" in done.stderr  # not a terminal: one line per 10%
    assert "NOT verified" in done.stderr and f"--sha256 {DIGEST}" in done.stderr
    assert "CC BY 4.0" in done.stdout
    bad = subprocess.run([*command, "--sha256", "1" * 64, "--force"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "\ndetector: error: " in bad.stderr and "fix:" in bad.stderr
