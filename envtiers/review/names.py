"""What the review commands accept: kept import-free, so building the CLI's parser stays cheap."""

from __future__ import annotations

FORMATS = ("text", "markdown", "json")  # envtiers diff --format
REVIEW_TIERS = ("pip", "conda", "image")  # the tiers diff and audit read
SBOM_TIERS = ("pip", "conda", "image")
