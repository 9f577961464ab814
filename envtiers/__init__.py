"""envtiers: pick a reproducibility tier (pip, conda, image) for the same Metaflow flow."""

__version__ = "0.1.0"
