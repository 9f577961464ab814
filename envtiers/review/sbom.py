"""`envtiers sbom --tier pip|conda|image [--platform P]`: a CycloneDX 1.6 JSON SBOM from the lock alone.

Nothing is installed or downloaded: the components are the lock's pins, with package URLs
(`pkg:pypi/name@version`, `pkg:conda/name@version?build=...&channel=...&subdir=...`), versions and
the hashes the lock accepts (for a pip pin, every file of that version it allows; for a conda
record and the conda lock's pip entries, the one file). The image tier's SBOM describes the image
(by digest when `lockfiles/image.json` is committed), its base image by digest, and the linux-64
lock's packages installed in it. Built with cyclonedx-python-lib, CycloneDX's reference library.

The serial number is derived from the content and the timestamp is SOURCE_DATE_EPOCH when set,
so the same lock gives the same SBOM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from typing import Any

from envtiers import __version__
from envtiers.errors import InputError
from envtiers.review.locked import IMAGE_PLATFORM, LockedPackage, LockedSet, load_locked
from envtiers.review.names import SBOM_TIERS
from envtiers.settings import Project

DEFAULT_PLATFORM = "linux-64"


def locked_set_for(project: Project, *, tier: str, platform: str | None) -> LockedSet:
    """The one locked set an SBOM describes. Raises InputError when that tier/platform is not locked."""
    if tier not in SBOM_TIERS:
        raise InputError(f"unknown tier {tier!r}", fix=f"use {', '.join(SBOM_TIERS)}")
    platform = platform or DEFAULT_PLATFORM
    if tier == "image" and platform != IMAGE_PLATFORM:
        raise InputError(f"the image tier is {IMAGE_PLATFORM} only", fix=f"drop --platform or use {IMAGE_PLATFORM}")
    loaded = load_locked(project, tiers=(tier,))
    for locked in loaded.sets:
        if locked.platform == platform:
            return locked
    raise InputError(
        f"the {tier} tier has no lock for {platform} ({'; '.join(loaded.skipped) or 'not a platform of the lock'})",
        fix="run `make lock`" if platform in project.platforms else f"use one of {', '.join(project.platforms)}",
    )


def sbom(project: Project, *, tier: str, platform: str | None = None) -> str:
    """The CycloneDX 1.6 JSON text for one tier and platform. Raises InputError / LockfileFormatError."""
    from cyclonedx.output.json import JsonV1Dot6

    locked = locked_set_for(project, tier=tier, platform=platform)
    return str(JsonV1Dot6(build_bom(project, locked)).output_as_string(indent=2)) + "\n"


def build_bom(project: Project, locked: LockedSet) -> Any:
    """The cyclonedx `Bom` model for `locked` (pure: reads nothing beyond what `locked` holds)."""
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    bom = Bom()
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="envtiers", version=__version__))
    components = [_component(p, locked.platform) for p in locked.packages]
    if locked.tier == "image":
        name, _, digest = (locked.image or f"{_image_name(project)}@").partition("@")
        root = Component(
            type=ComponentType.CONTAINER,
            name=name,
            version=digest or "unbuilt",
            bom_ref=f"image:{name}",
            description=f"the image tier: {locked.path} installed on the base image",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest.removeprefix("sha256:"))] if digest else [],
        )
        if locked.base_image:
            base_name, _, base_digest = locked.base_image.partition("@")
            base = Component(
                type=ComponentType.CONTAINER,
                name=base_name,
                version=base_digest,
                purl=PackageURL(
                    type="oci",
                    name=base_name.rsplit("/", 1)[-1].split(":", 1)[0].lower(),
                    version=base_digest,
                    qualifiers={"repository_url": base_name.split(":", 1)[0]},
                ),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=base_digest.removeprefix("sha256:"))],
                description="base image",
            )
            components.insert(0, base)
    else:
        root = Component(
            type=ComponentType.APPLICATION,
            name=project.root.name,
            version=locked.platform,
            bom_ref=f"{locked.tier}:{locked.platform}",
            description=f"the {locked.tier} tier for {locked.platform}, from {locked.path}",
        )
    bom.metadata.component = root
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    digest = hashlib.sha256(
        "\n".join(
            [locked.label, locked.base_image or "", *(f"{p.name} {p.version} {p.hashes}" for p in locked.packages)]
        ).encode()
    ).hexdigest()
    bom.serial_number = uuid.uuid5(uuid.NAMESPACE_URL, f"envtiers-sbom:{digest}")
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        bom.metadata.timestamp = dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
    return bom


def _component(package: LockedPackage, platform: str) -> Any:
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    algorithms = {"sha256": HashAlgorithm.SHA_256, "md5": HashAlgorithm.MD5}
    hashes = [
        HashType(alg=algorithms[a], content=v)
        for a, _, v in (h.partition(":") for h in package.hashes)
        if a in algorithms
    ]
    if package.manager == "conda":
        qualifiers = {"build": package.build or "", "subdir": _subdir(package, platform), "type": _conda_type(package)}
        if package.channel:
            qualifiers["channel"] = package.channel.rsplit("/", 1)[-1]
        purl = PackageURL(type="conda", name=package.name, version=package.version, qualifiers=qualifiers)
    else:
        purl = PackageURL(type="pypi", name=package.name, version=package.version)
    references = (
        [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(package.url))] if package.url else []
    )
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=hashes,
        external_references=references,
    )


def _subdir(package: LockedPackage, platform: str) -> str:
    parts = (package.url or "").rsplit("/", 2)
    return parts[1] if len(parts) == 3 else platform


def _conda_type(package: LockedPackage) -> str:
    return "tar.bz2" if (package.url or "").endswith(".tar.bz2") else "conda"


def _image_name(project: Project) -> str:
    raw = project.raw.get("image", {})
    registry = str(raw.get("registry", "")).rstrip("/") if isinstance(raw, dict) else ""
    repository = str(raw.get("repository", "detector")) if isinstance(raw, dict) else "detector"
    return f"{registry}/{repository}" if registry else repository
