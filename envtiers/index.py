"""The one client of a package index's simple API (PEP 691 JSON, or PEP 503 HTML), read-only.

Used wherever envtiers itself reads the index (uv reads it for locking and installing): the conda
lock's pip entries, the image's wheelhouse, the files shipped through the datastore, the review's
sizes and the diagnosis of an index URL that is not an index (`probe`). Pages are fetched
concurrently and once per client; `download` fetches one file, checked against its sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from packaging.utils import canonicalize_name

from envtiers.errors import DownloadMismatchError, IndexUnreachableError, ResolutionError
from envtiers.fsutil import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_INDEX = "https://pypi.org/simple"
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
CONCURRENT_REQUESTS = 16
# The longest a cached page is trusted without asking the index again (PyPI sends max-age=600).
MAX_AGE = 600


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute, without the #sha256 fragment
    sha256: str | None
    size: int | None = None  # bytes, when the index says (PEP 700 `size` in the JSON API)


class SimpleIndex:
    """A read-only client of one index's simple API; pages are fetched once per instance."""

    def __init__(self, url: str | None = None, *, timeout: float = 60.0, cache_dir: Path | None = None) -> None:
        self.url = (url or DEFAULT_INDEX).rstrip("/") + "/"
        self.timeout = timeout
        self.cache_dir = cache_dir
        self._pages: dict[str, list[IndexFile]] = {}

    def files(self, name: str, *, cached: bool = False) -> list[IndexFile]:
        """The files of `name`'s page. With `cached`, a page from the disk cache is used even past
        its max-age: right for callers that look files up by sha256 (a file's hash names it for
        good) and call `refresh` when the cached page lacks what they look for."""
        project = canonicalize_name(name)
        if project not in self._pages:
            self._pages[project] = self._fetch(project, stale_ok=cached)
        return self._pages[project]

    def refresh(self, name: str) -> list[IndexFile]:
        """The page of `name` as the index serves it now (the cache is revalidated)."""
        project = canonicalize_name(name)
        self._pages[project] = self._fetch(project, stale_ok=False)
        return self._pages[project]

    def prefetch(self, names: Iterable[str], *, cached: bool = False) -> None:
        """Fetch the pages of `names` concurrently (see `files` for `cached`)."""
        wanted = sorted({canonicalize_name(n) for n in names} - set(self._pages))
        with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
            fetched = pool.map(lambda project: self._fetch(project, stale_ok=cached), wanted)
            for project, files in zip(wanted, fetched, strict=True):
                self._pages[project] = files

    def _fetch(self, project: str, *, stale_ok: bool = False) -> list[IndexFile]:
        page = urljoin(self.url, f"{project}/")
        cached = self._cached(page)
        if cached is not None and (stale_ok or cached["expires"] > time.time()):
            return _from_cache(cached)
        log.info("GET %s", page)
        headers = {"Accept": _ACCEPT}
        if cached is not None and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        request = urllib.request.Request(page, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read().decode()
                files = _parse_page(body, response.headers.get("Content-Type", ""), response.geturl())
                self._store(page, files, response.headers)
        except urllib.error.HTTPError as error:
            if error.code == 304 and cached is not None:
                files = _from_cache(cached)
                self._store(page, files, error.headers)
                return files
            if error.code == 404:
                raise ResolutionError(
                    f"{project} is not on the package index the pip lock was resolved from",
                    fix="run `make lock` (the pip lock and the conda lock must come from the same index)",
                ) from None
            raise IndexUnreachableError(f"the package index answered {error.code} for {project}") from None
        except (urllib.error.URLError, OSError) as error:
            raise IndexUnreachableError(
                f"the package index could not be reached while choosing wheels for the conda lock: {error}",
                fix="check the network or [pip] index_url in envs/tiers.toml (ENVTIERS_INDEX_URL overrides it)",
            ) from None
        return files

    # -- an HTTP cache of the pages (max-age and ETag, as the index sends them) -----------------
    def _cache_file(self, page: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{hashlib.sha256(page.encode()).hexdigest()[:32]}.json"

    def _cached(self, page: str) -> dict[str, Any] | None:
        path = self._cache_file(page)
        if path is None:
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        wanted = {"url", "files", "expires"}
        return data if isinstance(data, dict) and wanted <= set(data) and data["url"] == page else None

    def _store(self, page: str, files: list[IndexFile], headers: Any) -> None:
        """Cache the page's files (what the page means to us, not its bytes: parsing a large
        project's page again costs more than fetching it)."""
        path = self._cache_file(page)
        if path is None:
            return
        match = re.search(r"max-age=(\d+)", headers.get("Cache-Control", "") or "")
        expires = time.time() + min(int(match[1]), MAX_AGE) if match else 0.0
        rows = [[file.filename, file.url, file.sha256, file.size] for file in files]
        entry: dict[str, Any] = {"url": page, "files": rows, "expires": expires}
        entry["etag"] = headers.get("ETag") or ""
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            atomic_write_text(path, json.dumps(entry))


def download(file: IndexFile, dest: Path, *, timeout: float = 120.0) -> int:
    """Stream `file` to `dest` through a temporary file beside it, renamed into place only once its
    sha256 matches `file.sha256`; returns its size. Raises IndexUnreachableError for a network
    fault and DownloadMismatchError for other bytes (nothing is left at `dest` either way)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(file.url, timeout=timeout) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if file.sha256 is not None and digest.hexdigest() != file.sha256:
            raise DownloadMismatchError(
                f"{file.url} does not have the sha256 the lock records ({file.sha256})",
                fix="check the index (a mirror serving other bytes), then `make lock`",
            )
        os.replace(partial, dest)
    except (urllib.error.URLError, OSError) as error:
        raise IndexUnreachableError(
            f"{file.filename} could not be downloaded from {file.url}: {error}",
            fix="check the network or [pip] index_url in envs/tiers.toml (ENVTIERS_INDEX_URL overrides it)",
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return size


def _from_cache(entry: dict[str, Any]) -> list[IndexFile]:
    return [
        IndexFile(str(row[0]), str(row[1]), None if row[2] is None else str(row[2]), _size(row[3:]))
        for row in entry["files"]
    ]


def _size(rest: list[Any]) -> int | None:
    """The size column (absent from pages cached before sizes were kept)."""
    return rest[0] if rest and isinstance(rest[0], int) else None


def _parse_page(body: str, content_type: str, base: str) -> list[IndexFile]:
    """The files a simple-API page lists (PEP 691 JSON or PEP 503 HTML)."""
    if "json" in content_type:
        data = json.loads(body)
        return [
            IndexFile(
                f["filename"],
                urldefrag(urljoin(base, f["url"]))[0],
                f.get("hashes", {}).get("sha256"),
                f.get("size") if isinstance(f.get("size"), int) else None,
            )
            for f in data.get("files", [])
        ]
    parser = _Anchors()
    parser.feed(body)
    result = []
    for href, text in parser.links:
        url, fragment = urldefrag(urljoin(base, href))
        sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        result.append(IndexFile(text.strip() or url.rsplit("/", 1)[-1], url, sha))
    return result


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text)))
            self._href = None


def probe(url: str, *, timeout: float = 5.0) -> str | None:
    """Why `url` is not a usable index (its root answers an HTTP error, or nothing), or None."""
    request = urllib.request.Request(url.rstrip("/") + "/", headers={"Accept": _ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        return f"{url} answers HTTP {error.code}: it is not a package index"
    except (urllib.error.URLError, OSError) as error:
        return f"{url} cannot be reached ({getattr(error, 'reason', error)})"
