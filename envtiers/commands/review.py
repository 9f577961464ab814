"""`envtiers diff`, `audit` and `sbom`: reviewing a lock change (envtiers.review)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from envtiers.review.cli import register as register_review

    register_review(subparsers)
