"""The one client of a package index's simple API (PEP 691 JSON, or PEP 503 HTML), read-only.

Used wherever envtiers itself reads the index (uv reads it for locking and installing): the conda
lock's pip entries and the diagnosis of an index URL that is not an index (`probe`). Pages are
fetched concurrently and once per client.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from packaging.utils import canonicalize_name

from envtiers.errors import IndexUnreachableError, ResolutionError

log = logging.getLogger(__name__)

DEFAULT_INDEX = "https://pypi.org/simple"
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
CONCURRENT_REQUESTS = 16


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute, without the #sha256 fragment
    sha256: str | None


class SimpleIndex:
    """A read-only client of one index's simple API; pages are fetched once per instance."""

    def __init__(self, url: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = (url or DEFAULT_INDEX).rstrip("/") + "/"
        self.timeout = timeout
        self._pages: dict[str, list[IndexFile]] = {}

    def files(self, name: str) -> list[IndexFile]:
        project = canonicalize_name(name)
        if project not in self._pages:
            self._pages[project] = self._fetch(project)
        return self._pages[project]

    def prefetch(self, names: Iterable[str]) -> None:
        wanted = sorted({canonicalize_name(n) for n in names} - set(self._pages))
        with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
            for project, files in zip(wanted, pool.map(self._fetch, wanted), strict=True):
                self._pages[project] = files

    def _fetch(self, project: str) -> list[IndexFile]:
        page = urljoin(self.url, f"{project}/")
        log.info("GET %s", page)
        request = urllib.request.Request(page, headers={"Accept": _ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read().decode()
                content_type = response.headers.get("Content-Type", "")
                base = response.geturl()
        except urllib.error.HTTPError as error:
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
        if "json" in content_type:
            data = json.loads(body)
            return [
                IndexFile(f["filename"], urldefrag(urljoin(base, f["url"]))[0], f.get("hashes", {}).get("sha256"))
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
