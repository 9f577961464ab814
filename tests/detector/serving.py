"""Running ``python -m detector serve`` as SageMaker does (a subprocess) and talking to it."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector import config

START_TIMEOUT = 300  # a loaded 2-core CI machine takes a minute to import TensorFlow


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(model_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """``python -m detector -v serve`` on 127.0.0.1; waits for its "serving ... on URL" line."""
    command = [sys.executable, "-m", "detector", "-v", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"]
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            [*command, *args], stdout=output, stderr=subprocess.STDOUT, cwd=config.PROJECT_ROOT, env=env
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
        if match:
            return Server(process, "127.0.0.1", int(match.group(1)), log_path)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not start: {log_path.read_text(errors='replace')}")


def request(server: Server, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
    """(status, parsed JSON body) of one request on a fresh connection."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers), from /proc."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            status = Path(f"/proc/{candidate}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) * 1024 if match else 0
    return total


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
