"""The package map in docs/development.md holds: each part imports only what the map says it may."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sparsesync_cli"

# part -> the parts it may import (names as in the package map of docs/development.md).
MAY_IMPORT = {
    "checkpoints": {"errors", "atomic", "families", "__init__"},
    "analysis": {"clock", "errors", "families", "media", "features", "sync_model", "heap"},
    "report": {"analysis", "atomic", "clock", "errors", "__init__"},
    "evaluation": {"analysis", "atomic", "checkpoints", "media", "report", "clock", "errors", "heap"},
    "distributed": {"analysis", "evaluation", "media", "sync_model", "atomic", "errors", "heap"},
    "media": {"atomic", "clock", "errors"},
    "models": {"clock", "errors", "checkpoints"},
    "features": {"clock", "errors"},
    "families": {"analysis", "errors", "checkpoints", "models", "features"},
    "atomic": set(),
    "heap": set(),
    "writable": {"errors"},
    "clock": set(),
    "errors": set(),
}


def imported_parts(path: Path) -> set[str]:
    """The top-level parts of sparsesync_cli that a module imports (relative imports)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    package = list(rel.parts[:-1])
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            if target:
                parts.add(target[0])
            else:  # from .. import clock
                parts |= {a.name if a.name != "__version__" else "__init__" for a in node.names}
    return parts


def test_each_part_imports_only_what_the_map_allows():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if part not in MAY_IMPORT:
            continue
        extra = imported_parts(path) - MAY_IMPORT[part] - {part}
        wrong += [f"{path.relative_to(PACKAGE)} imports {p}" for p in sorted(extra)]
    assert wrong == []


def test_only_the_cli_prints():
    printing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "cli"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert printing == []
