"""Every module ``src/`` imports comes from a declared dependency, and the lock pins each.

A module that arrives only as another package's dependency (yarl through aiohttp,
referencing through jsonschema) works until that package stops needing it; declaring
it is what keeps the import working.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Loaded by name rather than imported: SQLAlchemy's drivers, chosen by the database URL.
DRIVERS = {"aiosqlite"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_name(requirement) for requirement in project["dependencies"]}


def _imported_roots() -> dict[str, str]:
    """Top-level third-party modules imported anywhere in src/, with one file each."""
    roots: dict[str, str] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root not in sys.stdlib_module_names and root != "bastion":
                    roots.setdefault(root, str(path.relative_to(ROOT)))
    return roots


def test_every_imported_module_is_declared() -> None:
    declared = _declared()
    providers = packages_distributions()
    undeclared = {
        root: where
        for root, where in _imported_roots().items()
        if not {_name(d) for d in providers.get(root, [])} & declared
    }
    assert undeclared == {}


def test_every_declared_dependency_is_used() -> None:
    providers = packages_distributions()
    used = {_name(d) for root in _imported_roots() for d in providers.get(root, [])}
    assert _declared() - used == DRIVERS


def test_the_lock_pins_every_declared_dependency() -> None:
    lock = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    pinned = {_name(line) for line in lock.splitlines() if "==" in line}
    assert _declared() <= pinned
