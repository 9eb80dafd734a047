"""The gateway's folders as its package docstring states them: each concern imports only
the ones below it, no module grows past a screenful or two, and the Lua scripts kept
beside their modules reach an installed package."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GATEWAY = REPO / "gateway"

LAYERS: list[set[str]] = [
    {"errors"},
    {"edge"},
    {"limits"},
    {"access"},
    {"backends"},
    {"cache"},
    {"replay"},
    {"routing"},
    {"shadow"},
    {"experiments"},
    {"jobs"},
    {"settings", "stores", "state", "pipeline"},
    {"routes"},
    {"app", "server"},
]
"""From the bottom up, as ``gateway/__init__.py`` lists them."""

LONGEST_MODULE = 330
MOST_TOP_LEVEL_MODULES = 12


def layer_of(part: str) -> int:
    (found,) = [i for i, names in enumerate(LAYERS) if part in names]
    return found


def modules() -> list[Path]:
    return sorted(p for p in GATEWAY.rglob("*.py") if "__pycache__" not in p.parts)


def gateway_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first part below ``gateway``) of every import of a gateway module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "gateway":
                names = [f"gateway.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "gateway" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_every_folder_imports_only_the_ones_below_it() -> None:
    upward = []
    for path in modules():
        relative = path.relative_to(GATEWAY)
        if relative == Path("__init__.py"):
            continue
        own = layer_of(relative.parts[0].removesuffix(".py"))
        for line, imported in gateway_imports(path):
            if layer_of(imported) > own:
                upward.append(f"{relative}:{line} imports gateway.{imported}")
    assert not upward, "\n".join(upward)


def test_modules_are_short_and_say_what_they_are_for() -> None:
    for path in modules():
        text = path.read_text()
        assert len(text.splitlines()) <= LONGEST_MODULE, path
        assert ast.get_docstring(ast.parse(text)), f"{path} has no docstring"


def test_the_top_folder_holds_few_modules_and_the_concerns_are_folders() -> None:
    top = [p for p in GATEWAY.glob("*.py")]
    assert len(top) <= MOST_TOP_LEVEL_MODULES
    folders = {p.name for p in GATEWAY.iterdir() if (p / "__init__.py").exists()}
    assert folders == set().union(*LAYERS) - {p.stem for p in top}


def test_the_lua_scripts_reach_the_installed_package() -> None:
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    scripts = sorted(GATEWAY.rglob("*.lua"))
    assert scripts
    for script in scripts:
        package = ".".join(script.parent.relative_to(REPO).parts)
        patterns = package_data.get(package, []) + package_data.get("*", [])
        assert any(fnmatch.fnmatch(script.name, p) for p in patterns), script
