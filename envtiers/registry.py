"""The registry of tiers: every command, `check` and the Metaflow extension loop over it.

A tier is named here once, as the module path of its class (imported only when asked for, so
`envtiers check --tier pip` never imports the conda tier's solver). Adding a tier: implement
`envtiers.tiers.Tier` in `envtiers/<name>/tier.py` and add one line to `TIERS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from envtiers.errors import InputError
from envtiers.settings import Project

if TYPE_CHECKING:
    from envtiers.tiers import Tier

# In the order `lock` runs them: the conda lock's pip entries come from the pip lock.
TIERS: dict[str, str] = {
    "pip": "envtiers.pip.tier:PipTier",
    "conda": "envtiers.conda.tier:CondaTier",
    "image": "envtiers.image.tier:ImageTier",
}
# What each tier can do, known without importing it (the CLI's --tier choices).
LOCKABLE = ("pip", "conda")
WITH_ENV = ("pip", "conda")

_loaded: dict[str, Tier] = {}


def tier_names() -> tuple[str, ...]:
    return tuple(TIERS)


def get_tier(name: str) -> Tier:
    """The tier called `name`. Raises InputError for an unknown name."""
    if name not in TIERS:
        raise InputError(f"unknown tier {name!r}", fix=f"use one of {', '.join(TIERS)}")
    if name not in _loaded:
        module, _, attribute = TIERS[name].partition(":")
        _loaded[name] = getattr(importlib.import_module(module), attribute)()
    return _loaded[name]


def configured_tiers(project: Project, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The tiers (of `names`, default all) this project uses, in registry order."""
    return tuple(name for name in names or TIERS if get_tier(name).is_configured(project))
