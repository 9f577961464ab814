"""OSV advisories (https://ossf.github.io/osv-schema/): reading them, and whether a version is affected.

Two sources answer the same question ("which advisories affect name==version?"):

- `FolderDatabase`: a folder of OSV records, YAML or JSON, laid out like the PyPA advisory database
  (`vulns/<package>/<ID>.yaml`). Only the folders of the packages asked about are read, so auditing
  a few hundred pins against thousands of advisories reads a few dozen files.
- `OsvService`: OSV's HTTP API (`POST /v1/querybatch`, then `GET /v1/vulns/<id>` for each match).

Either way the record is matched here, by `affects`: ECOSYSTEM/SEMVER ranges (introduced, fixed,
last_affected events) and explicit `versions`; withdrawn records affect nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envtiers.errors import EnvtiersError, InputError

log = logging.getLogger(__name__)

DEFAULT_SERVICE_URL = "https://api.osv.dev"
SERVICE_VARIABLE = "ENVTIERS_OSV_URL"
PYPI = "PyPI"
_SUFFIXES = (".yaml", ".yml", ".json")


class AdvisoryServiceError(EnvtiersError):
    """The advisory service could not be asked: the audit could not run."""

    exit_code = 2


@dataclass(frozen=True)
class Affected:
    ecosystem: str
    name: str  # canonical for PyPI
    purl: str | None
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # per range: (event kind, version) in order
    versions: frozenset[str]


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    withdrawn: bool
    affected: tuple[Affected, ...]

    def matches(self, *, ecosystem: str, name: str, version: str) -> tuple[bool, str | None]:
        """(affected?, the first fixed version above `version`, or None when no fix is known)."""
        hit = False
        fixes: list[Version] = []
        for affected in self.affected:
            if not _same_package(affected, ecosystem, name):
                continue
            parsed = _version(version)
            if version in affected.versions or (parsed is not None and parsed in _versions(affected.versions)):
                hit = True
            for events in affected.ranges:
                if parsed is not None and _in_range(parsed, events):
                    hit = True
                    fixes += [v for kind, text in events if kind == "fixed" and (v := _version(text)) and v > parsed]
        if self.withdrawn or not hit:
            return False, None
        return True, str(min(fixes)) if fixes else None


def parse(data: Mapping[str, Any], *, source: str) -> Advisory:
    """An OSV record (already loaded from YAML or JSON). Raises InputError when it is not one."""
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        raise InputError(f"{source} is not an OSV advisory (no `id`)", fix="point --db at a folder of OSV records")
    affected = []
    for item in data.get("affected") or ():
        package = item.get("package") or {}
        ecosystem = str(package.get("ecosystem", ""))
        name = str(package.get("name", ""))
        ranges = tuple(
            tuple((kind, str(value)) for event in r.get("events") or () for kind, value in event.items())
            for r in item.get("ranges") or ()
            if r.get("type") in ("ECOSYSTEM", "SEMVER")
        )
        affected.append(
            Affected(
                ecosystem=ecosystem,
                name=canonicalize_name(name) if ecosystem == PYPI else name,
                purl=package.get("purl"),
                ranges=ranges,
                versions=frozenset(str(v) for v in item.get("versions") or ()),
            )
        )
    return Advisory(
        id=data["id"],
        aliases=tuple(str(a) for a in data.get("aliases") or ()),
        summary=str(data.get("summary") or data.get("details") or "").strip().split("\n", 1)[0][:160],
        withdrawn=bool(data.get("withdrawn")),
        affected=tuple(affected),
    )


def _same_package(affected: Affected, ecosystem: str, name: str) -> bool:
    if ecosystem == PYPI:
        return affected.ecosystem == PYPI and affected.name == canonicalize_name(name)
    # conda records: OSV has no conda ecosystem; an advisory names them by purl.
    return bool(affected.purl) and str(affected.purl).split("@", 1)[0].lower() == f"pkg:conda/{name}".lower()


@functools.cache
def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@functools.cache
def _versions(texts: frozenset[str]) -> frozenset[Version]:
    return frozenset(v for t in texts if (v := _version(t)) is not None)


def _in_range(version: Version, events: Sequence[tuple[str, str]]) -> bool:
    """OSV's evaluation: walk the events sorted by version; introduced opens, fixed/last_affected close."""
    keyed = []
    for kind, text in events:
        if kind == "introduced" and text == "0":
            keyed.append((Version("0"), 0, kind))
        elif kind in ("introduced", "fixed", "last_affected") and (parsed := _version(text)) is not None:
            keyed.append((parsed, {"fixed": 0, "introduced": 1, "last_affected": 2}[kind], kind))
    affected = False
    for bound, _, kind in sorted(keyed):
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind == "fixed" and version >= bound) or (kind == "last_affected" and version > bound):
            affected = False
    return affected


class FolderDatabase:
    """OSV records under `root`, indexed by the folder each file is in (the PyPA layout).

    Files whose folder is not a package name (directly under `root`, or under `vulns/`) are read for
    every query.
    """

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise InputError(
                f"advisory database {root} is not a folder",
                fix="pass --db PATH (an OSV folder, e.g. a clone of github.com/pypa/advisory-database) "
                "or --service osv",
            )
        self.root = root
        self._by_folder: dict[str, list[Path]] = {}
        self._loose: list[Path] = []
        self._parsed: dict[Path, Advisory] = {}
        for folder, _, files in os.walk(root):
            here = Path(folder)
            records = [here / f for f in files if f.endswith(_SUFFIXES)]
            if not records:
                continue
            if here == root or here.name == "vulns":
                self._loose += records
            else:
                self._by_folder.setdefault(canonicalize_name(here.name), []).extend(records)
        if not self._by_folder and not self._loose:
            raise InputError(f"advisory database {root} holds no OSV records (*.yaml, *.json)", fix="check --db")

    def advisories(self, names: Iterable[str]) -> dict[str, list[Advisory]]:
        """name -> the advisories that may concern it (matching is left to `Advisory.matches`)."""
        wanted = sorted({canonicalize_name(n) for n in names})
        loose = [self._load(p) for p in self._loose]
        return {name: [*(self._load(p) for p in self._by_folder.get(name, ())), *loose] for name in wanted}

    def _load(self, path: Path) -> Advisory:
        if path not in self._parsed:
            self._parsed[path] = parse(_read_record(path), source=str(path))
        return self._parsed[path]


def _read_record(path: Path) -> Any:
    try:
        text = path.read_text()
        if path.suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as error:  # OSError, json's and yaml's errors: the record cannot be used
        raise InputError(
            f"{path} cannot be read as an OSV record: {' '.join(str(error).split())[:200]}",
            fix="repair or remove the file",
        ) from None


class OsvService:
    """OSV's query API. One batch query for every (package, version), then each matching record."""

    def __init__(self, url: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get(SERVICE_VARIABLE) or DEFAULT_SERVICE_URL).rstrip("/")
        self.timeout = timeout

    def matching(self, queries: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], list[Advisory]]:
        """(ecosystem, name, version) -> the advisories the service says affect it."""
        ids: dict[tuple[str, str, str], list[str]] = {}
        for start in range(0, len(queries), 1000):  # the API's batch limit
            chunk = list(queries[start : start + 1000])
            body = {
                "queries": [{"package": {"ecosystem": e, "name": n}, "version": v} for e, n, v in chunk],
            }
            answer = self._call("/v1/querybatch", body)
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                raise AdvisoryServiceError(f"{self.url}/v1/querybatch answered something that is not a batch result")
            for query, result in zip(chunk, results, strict=True):
                ids[query] = [str(v["id"]) for v in (result or {}).get("vulns") or ()]
        unique = sorted({i for found in ids.values() for i in found})
        with ThreadPoolExecutor(8) as pool:
            records = dict(zip(unique, pool.map(self._record, unique), strict=True))
        return {query: [records[i] for i in found] for query, found in ids.items()}

    def _record(self, vuln_id: str) -> Advisory:
        return parse(self._call(f"/v1/vulns/{vuln_id}", None), source=f"{self.url}/v1/vulns/{vuln_id}")

    def _call(self, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json", "Accept": "application/json"}
        )
        log.info("%s %s%s", "POST" if data else "GET", self.url, path)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode())
        except urllib.error.HTTPError as error:
            raise AdvisoryServiceError(
                f"the advisory service answered {error.code} for {path}",
                fix=f"check {SERVICE_VARIABLE} / [audit] osv_url, or audit offline with --db PATH",
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise AdvisoryServiceError(
                f"the advisory service {self.url} could not be reached: {error}",
                fix="audit offline with --db PATH (an OSV folder such as the PyPA advisory database)",
            ) from None
