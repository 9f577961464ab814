"""envtiers' Metaflow extension: run each step inside the environment built from a tier's lock.

    python flows/detector_flow.py --environment=envtiers-pip run     # or envtiers-conda, envtiers-image

Each environment attaches the `@envtiers` step decorator to every step; the decorator starts local
tasks on the tier's interpreter (or container) and records where each task ran.
"""

ENVIRONMENTS_DESC = [
    ("envtiers-pip", ".tier_environment.PipTierEnvironment"),
    ("envtiers-conda", ".tier_environment.CondaTierEnvironment"),
    ("envtiers-image", ".tier_environment.ImageTierEnvironment"),
]

STEP_DECORATORS_DESC = [("envtiers", ".tier_decorator.EnvtiersStepDecorator")]
