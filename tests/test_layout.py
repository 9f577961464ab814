"""The package's shape, as a newcomer relies on it: one tier interface behind a registry, imports
that point one way, short modules, and a CLI that names no tier."""

from __future__ import annotations

import ast
from pathlib import Path

from envtiers.registry import TIERS, get_tier
from envtiers.tiers import Tier
from tests.support import REPO_ROOT

PACKAGE = REPO_ROOT / "envtiers"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """envtiers modules imported at module level (not inside functions, not under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("envtiers"):
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("envtiers"))
    return found


def test_no_import_cycle_in_envtiers() -> None:
    graph = {module_name(p): top_level_imports(p) for p in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, f"import cycle: {' -> '.join([*path, module])}"
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            if imported in graph and imported != module and not module.startswith(imported + "."):
                visit(imported, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])


def test_no_module_over_400_lines() -> None:
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_cli_names_no_tier() -> None:
    text = (PACKAGE / "cli.py").read_text()
    for name in TIERS:
        assert f'"{name}"' not in text and f"'{name}'" not in text and f".{name}." not in text


def test_every_registered_tier_implements_the_interface() -> None:
    members = [name for name in dir(Tier) if not name.startswith("_")]
    for name in TIERS:
        tier = get_tier(name)
        assert tier.name == name
        missing = [member for member in members if not callable(getattr(tier, member, None)) and member != "name"]
        assert missing == [], f"{name} lacks {missing}"
