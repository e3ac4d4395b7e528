"""The package map in docs/development.md holds: each part imports only what the map says it may."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sparsesync_cli"

# part -> the parts it may import (names as in the package map of docs/development.md).
MAY_IMPORT = {
    "checkpoints": {"errors", "atomic", "families", "__init__"},
    # analysis and evaluation reach distributed only lazily, for --decode-workers: the local worker
    # pool runs the same decode units (distributed/work.py) as Ray does.
    "analysis": {
        "clock",
        "errors",
        "families",
        "geometry",
        "media",
        "features",
        "sync_model",
        "heap",
        "distributed",
    },
    "output": {"analysis", "atomic", "clock", "errors", "__init__"},
    "report": {"output"},  # the deprecated name of output/, nothing else
    "evaluation": {
        "analysis",
        "atomic",
        "checkpoints",
        "families",
        "models",
        "media",
        "output",
        "clock",
        "errors",
        "heap",
        "distributed",
    },
    "distributed": {"analysis", "clock", "evaluation", "media", "sync_model", "atomic", "errors", "heap"},
    "media": {"atomic", "clock", "errors"},
    "models": {"clock", "errors", "checkpoints"},
    "features": {"clock", "errors"},
    "families": {"errors", "geometry", "checkpoints", "models", "features"},
    "geometry": {"clock"},  # the ground floor: a window and the part of it a model uses
    "sync_model": {"errors", "families", "geometry", "checkpoints", "models"},  # never analysis
    "testmedia": {"media"},  # for tests and bench/; nothing in the package imports it
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


def test_the_family_table_and_the_model_load_without_the_analysis_package():
    """Loading a checkpoint (registry -> families -> sync_model) must not drag in window planning."""
    code = (
        "import sys, sparsesync_cli.checkpoints.registry, sparsesync_cli.families\n"
        "import sparsesync_cli.sync_model\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('sparsesync_cli.analysis'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, check=True)


def test_the_tool_never_imports_its_test_media():
    """``testmedia`` is for the tests and bench/: no other part of the package may need it."""
    users = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "testmedia" and "testmedia" in imported_parts(path)
    ]
    assert users == []
    assert imported_parts(PACKAGE / "testmedia" / "synth.py") == set()


BENCH = PACKAGE.parent / "bench"
TEST_MODULES = {"tests", "helpers", "conftest"} | {p.stem for p in (PACKAGE.parent / "tests").glob("*.py")}


def test_bench_stands_apart_from_the_tests():
    """bench/ imports the installed package (and its own modules), never tests/, and edits no
    sys.path: the authors' checkout in reference_model.py is the one exception."""
    wrong = []
    for path in sorted(BENCH.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                names = []
            wrong += [f"{path.name} imports {n}" for n in names if n.split(".")[0] in TEST_MODULES]
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
                and path.name != "reference_model.py"
            ):
                wrong.append(f"{path.name} uses sys.path (line {node.lineno})")
    assert wrong == []
