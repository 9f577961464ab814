"""The files `envtiers init` writes, as text: pure functions of what `sources` found.

Templates live in templates/ (package data). envtiers.mk is copied verbatim: the envtiers
repository's own Makefile includes that same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envtiers import __version__
from envtiers.scaffold.imports import Imported, render_preferences
from envtiers.scaffold.sources import Sources

# The base the envtiers repository's image is built on (python:3.11-slim-bookworm, by digest).
# Other Python versions get an unpinned name: `envtiers image build` then asks for a digest.
PINNED_BASES = {
    "3.11": "python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91",
}
# What a remote task installs before it can run envtiers (the wheel's own dependencies).
TOOLS_SPEC = ("uv>=0.13,<0.14", "packaging>=24")
CONDA_TOOLS_SPEC = ("py-rattler>=0.28,<0.29", "conda-lock>=4.0.3,<5")  # the wheel's `conda` extra
MAKEFILE_INCLUDE = "envtiers.mk"
# The first line of a Makefile written by init: such a Makefile is init's to compare and update.
MAKEFILE_HEADER = "# Written by `envtiers init`"
CI_WORKFLOW = ".github/workflows/envtiers.yml"


@dataclass(frozen=True)
class Options:
    platforms: tuple[str, ...] = ("linux-64", "osx-arm64")
    index_url: str | None = None
    registry: str | None = None
    name: str = "project"
    metaflow: str = "metaflow"  # the requirement added when the project's spec lacks metaflow
    makefile: bool = True  # write a Makefile that includes envtiers.mk (only when there is none)
    conda: bool = False  # the conda tier: envs/environment.yml, and envtiers[conda] in CI


def template(name: str) -> str:
    return resources.files("envtiers.scaffold").joinpath("templates", name).read_text()


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def has_metaflow(requirements: tuple[str, ...]) -> bool:
    return any(canonicalize_name(Requirement(line).name) == "metaflow" for line in requirements)


def render_files(sources: Sources, options: Options, imported: Imported | None = None) -> dict[str, str]:
    """Every file `init` writes, path (relative to the project root) -> content."""
    files = {
        "envs/tiers.toml": render_tiers_toml(sources, options),
        "envs/requirements.in": render_requirements(sources, options),
        "envs/tools.in": "# What a remote task installs to run envtiers (written by `envtiers init`).\n"
        + "\n".join((*TOOLS_SPEC, *(CONDA_TOOLS_SPEC if options.conda else ())))
        + "\n",
        "docker/Dockerfile": render_dockerfile(sources, name=options.name),
        ".dockerignore": _fill(template("dockerignore"), allow_code="".join(f"!{p}/\n" for p in sources.packages)),
        MAKEFILE_INCLUDE: template("envtiers.mk"),
        CI_WORKFLOW: _fill(
            template("ci.yml"),
            python=sources.python,
            requirement=f"envtiers{'[conda]' if options.conda else ''}=={__version__}",
        ),
    }
    if options.conda:
        files["envs/environment.yml"] = render_environment(sources)
    if imported is not None:
        files["envs/preferences.txt"] = render_preferences(imported)
    if options.makefile:
        flow = f"ENVTIERS_FLOW := {sources.flows[0]}\n" if sources.flows else ""
        files["Makefile"] = (
            f"{MAKEFILE_HEADER}: the envtiers targets; add your own below the include.\n"
            f".DEFAULT_GOAL := check\n{flow}include {MAKEFILE_INCLUDE}\n"
        )
    return files


def render_requirements(sources: Sources, options: Options) -> str:
    lines = [
        "# The flow's direct runtime dependencies (written by `envtiers init` from "
        + (", ".join(sources.read_from) or "nothing: add them here")
        + ").",
        "# Lock with `envtiers lock` (make lock); never pin transitive packages here.",
        *sources.requirements,
    ]
    if not has_metaflow(sources.requirements):
        lines += ["# Steps run the environment's own Metaflow: added by `envtiers init`.", options.metaflow]
    return "\n".join(lines) + "\n"


def render_environment(sources: Sources) -> str:
    channels = "".join(f"  - {c}\n" for c in sources.channels)
    specs = "".join(f"  - {s}\n" for s in sources.conda_specs)
    return (
        "# The conda tier: the interpreter and native libraries (written by `envtiers init`).\n"
        "# Python packages go in envs/requirements.in: the conda lock's pip entries are the pip lock.\n"
        f"channels:\n{channels}dependencies:\n  - python {sources.python}.*\n  - pip\n{specs}"
    )


def render_dockerfile(sources: Sources, *, name: str) -> str:
    base = PINNED_BASES.get(sources.python, f"python:{sources.python}-slim-bookworm")
    copies = "".join(f"COPY {p} /opt/envtiers/app/{p}\n" for p in sources.packages)
    return _fill(
        template("Dockerfile"), python=sources.python, base_image=base, copy_code=copies.rstrip("\n"), name=name
    )


def render_tiers_toml(sources: Sources, options: Options) -> str:
    quoted = ", ".join(json.dumps(p) for p in options.platforms)
    index = (
        f"index_url = {json.dumps(options.index_url)}\n"
        if options.index_url
        else '# index_url = "https://pypi.example.com/simple"   # a mirror; ENVTIERS_INDEX_URL overrides\n'
    )
    registry = (
        f"registry = {json.dumps(options.registry)}\n"
        if options.registry
        else '# registry = "ghcr.io/your-org"   # where `make image` pushes; REGISTRY=... overrides\n'
    )
    include = ", ".join(json.dumps(p) for p in sources.packages)
    return (
        "# envtiers settings (written by `envtiers init`). CLI options and ENVTIERS_* variables override them.\n"
        "\n[project]\n"
        f'python = "{sources.python}"\n'
        "# Conda subdir names: every lock is resolved for each of them, from any host.\n"
        f"platforms = [{quoted}]\n"
        "\n[pip]\n"
        'spec = "requirements.in"\n'
        'overrides = ""\n'
        'dev_spec = ""\n'
        'tools_spec = "tools.in"   # uv + packaging for remote tasks (lockfiles/tools.txt)\n'
        f"{index}"
        "\n[conda]\n"
        "# The conda tier is on while this file exists (envtiers init --tiers pip,conda,image writes it).\n"
        'environment = "environment.yml"\n'
        "\n[image]\n"
        f"{registry}"
        f"repository = {json.dumps(options.name)}\n"
        "\n[flow]\n"
        "# The project's own packages the steps import: shipped to remote tasks and into the image.\n"
        f"include = [{include}]\n"
    )
