"""scripts/labkit: the lab runs with the system python3 before any venv exists, so every module
but the client and the benchmarks imports only the standard library and other such modules."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

LABKIT = Path(__file__).resolve().parents[2] / "scripts" / "labkit"
NEEDS_VENV = {"labkit.client", "labkit.bench"}  # and everything under labkit.bench


def module_name(path: Path) -> str:
    parts = path.relative_to(LABKIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def venv_only(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in NEEDS_VENV)


STDLIB_ONLY = sorted(p for p in LABKIT.rglob("*.py") if not venv_only(module_name(p)))


@pytest.mark.parametrize("path", STDLIB_ONLY, ids=lambda p: module_name(p))
def test_lab_modules_import_only_the_standard_library(path):
    for name in imports(path):
        top = name.split(".")[0]
        if top == "labkit":
            assert not venv_only(name), f"{module_name(path)} imports {name}, which needs the venv"
        else:
            assert top in sys.stdlib_module_names or top == "__future__", f"{module_name(path)} imports {name}"


def test_the_stdlib_only_set_is_the_lab():
    assert {module_name(p) for p in STDLIB_ONLY} >= {"labkit", "labkit.cli", "labkit.state", "labkit.hosts",
                                                     "labkit.guests", "labkit.guest_cpu"}
