"""Reviewing lock changes like code: diff, audit, SBOM, pylock.toml export and coverage."""
