"""A tiny OSV database the tests write themselves, and a local OSV API on 127.0.0.1 serving it."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# purepkg < 2.0 (a range with a fixed event), platpkg 1.0 (explicit versions), markerpkg (withdrawn).
RANGE_ADVISORY = {
    "id": "TEST-2024-1",
    "aliases": ["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc"],
    "summary": "purepkg before 2.0 evaluates untrusted input",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "PurePkg"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }
    ],
}
VERSIONS_ADVISORY = {
    "id": "TEST-2024-2",
    "summary": "platpkg 1.0 ships a bad default",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "platpkg"}, "versions": ["0.9", "1.0"]}],
}
WITHDRAWN_ADVISORY = {
    "id": "TEST-2024-3",
    "withdrawn": "2024-05-01T00:00:00Z",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "markerpkg"}, "versions": ["1.0"]}],
}
ADVISORIES = (RANGE_ADVISORY, VERSIONS_ADVISORY, WITHDRAWN_ADVISORY)


def write_osv_folder(root: Path) -> Path:
    """The PyPA layout: vulns/<package>/<id>.yaml (and one JSON record, which OSV also allows)."""
    import yaml

    for advisory in ADVISORIES:
        folder = root / "vulns" / advisory["affected"][0]["package"]["name"].lower()
        folder.mkdir(parents=True, exist_ok=True)
        if advisory is VERSIONS_ADVISORY:
            (folder / f"{advisory['id']}.json").write_text(json.dumps(advisory))
        else:
            (folder / f"{advisory['id']}.yaml").write_text(yaml.safe_dump(advisory))
    return root


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.queries.extend(body["queries"])
        results = []
        for query in body["queries"]:
            key = (query["package"]["ecosystem"], query["package"]["name"], query["version"])
            ids = self.server.table.get(key, [])
            results.append({"vulns": [{"id": i, "modified": "2024-01-01T00:00:00Z"} for i in ids]} if ids else {})
        self._send(200, {"results": results})

    def do_GET(self) -> None:
        vuln_id = self.path.removeprefix("/v1/vulns/")
        record = self.server.records.get(vuln_id)
        self._send(200, record) if record else self._send(404, {"code": 5, "message": "Bug not found."})

    def _send(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    table: Mapping[tuple[str, str, str], list[str]]
    records: Mapping[str, Any]
    queries: list[Any]


class OsvStub:
    """OSV's query API as the real service answers it: ids from querybatch, records from /v1/vulns/<id>.
    `table` says which ids the service reports for (ecosystem, name, version): its own answers, not ours."""

    def __init__(self, table: Mapping[tuple[str, str, str], list[str]]) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.table = table
        self.server.records = {a["id"]: a for a in ADVISORIES}
        self.server.queries = []
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def queries(self) -> list[Any]:
        return self.server.queries

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
