"""The exact wheel each pip pin installs on a platform: read from the index's simple API.

The pip tier's lock holds versions and the hashes of every file of that version; the conda lock
needs one URL and one sha256 per package and platform. This module asks the index (PEP 691 JSON,
or PEP 503 HTML) for the files of each pinned version, keeps those whose sha256 is in the lock, and
picks the one whose tags rank highest for the platform and interpreter (as an installer would).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from packaging import tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from envtiers.errors import IndexUnreachableError, ResolutionError

log = logging.getLogger(__name__)

DEFAULT_INDEX = "https://pypi.org/simple"
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute, without the #sha256 fragment
    sha256: str | None
    size: int | None = None  # bytes, when the index says (PEP 700 `size` in the JSON API)


def supported_tags(platform: str, python: str, virtual: Mapping[str, str]) -> list[tags.Tag]:
    """Tags an interpreter of `python` (e.g. '3.11') accepts on `platform`, best first.

    The platform limits come from the conda tier's virtual packages (`__glibc`, `__osx`), so the
    wheels chosen run wherever the conda part of the lock does.
    """
    major, minor = (int(p) for p in python.split(".")[:2])
    if platform.startswith("linux"):
        arch = "x86_64" if platform == "linux-64" else "aarch64"
        glibc = virtual.get("__glibc", "2.28").split(".")
        top = int(glibc[1]) if len(glibc) > 1 else 28
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        names = []
        for m in range(top, 4, -1):
            names.append(f"manylinux_2_{m}_{arch}")
            if m in legacy:
                names.append(f"{legacy[m]}_{arch}")
        names.append(f"linux_{arch}")
    elif platform.startswith("osx"):
        arch = "arm64" if platform == "osx-arm64" else "x86_64"
        osx = virtual.get("__osx", "13.0").split(".")
        names = list(tags.mac_platforms((int(osx[0]), int(osx[1]) if len(osx) > 1 else 0), arch))
    else:
        raise ResolutionError(f"no wheel tags known for platform {platform}")
    interpreter = f"cp{major}{minor}"
    found = list(tags.cpython_tags((major, minor), abis=[interpreter, "abi3", "none"], platforms=names))
    found += list(tags.compatible_tags((major, minor), interpreter=interpreter, platforms=names))
    return found


def choose(files: Iterable[IndexFile], *, hashes: set[str], ranking: Mapping[tags.Tag, int]) -> IndexFile | None:
    """The locked wheel (sha256 in `hashes`) with the best-ranked tag, or None."""
    best: tuple[int, IndexFile] | None = None
    for file in files:
        if not file.filename.endswith(".whl") or file.sha256 not in hashes:
            continue
        try:
            _, _, _, file_tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        rank = min((ranking[t] for t in file_tags if t in ranking), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, file)
    return best[1] if best else None


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
        with ThreadPoolExecutor(8) as pool:
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
