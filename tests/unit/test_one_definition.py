"""Each rule and constant that restates libvirt has one definition (issue 20): a second copy drifts (the
shared-filesystem list once existed twice and the copies disagreed on four filesystems, both tests green)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [p for d in ("coordinator", "checks") for p in sorted((ROOT / d).rglob("*.py"))]


def _assignments(name_part: str) -> list[str]:
    """Module-level names containing ``name_part`` that are assigned (not imported) anywhere in the product."""
    found = []
    for path in PRODUCT:
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            found += [f"{path.relative_to(ROOT)}:{t.id}" for t in targets
                      if isinstance(t, ast.Name) and name_part in t.id]
    return found


def _literals(text: str) -> list[str]:
    return [f"{p.relative_to(ROOT)}" for p in PRODUCT
            if any(isinstance(n, ast.Constant) and n.value == text for n in ast.walk(ast.parse(p.read_text())))]


@pytest.mark.parametrize("name, where", [
    ("SHARED_FS", "coordinator/core/migration_rules.py"),
    ("CLUSTER_FS", "coordinator/core/migration_rules.py"),
    ("TPM_STATE_ROOT", "coordinator/core/migration_rules.py"),
])
def test_a_libvirt_constant_is_defined_in_one_module(name, where):
    assert {a.split(":")[0] for a in _assignments(name)} == {where}


@pytest.mark.parametrize("text, where", [
    ("/var/lib/libvirt/swtpm", "coordinator/core/migration_rules.py"),
    ("ocfs2", "coordinator/core/migration_rules.py"),
])
def test_a_libvirt_fact_is_spelled_in_one_module(text, where):
    assert _literals(text) == [where]


# Names each command module defines for itself on purpose (its own exit-code table for --help).
PER_COMMAND = {"EXIT_HELP"}


def test_every_public_class_and_constant_is_defined_once():
    """A type or constant defined in two modules drifts like the shared-FS list did (``EventSink`` once
    lived in ``steps/monitor`` and ``steps/options``; the journal and lock defaults in ``cli/options`` too)."""
    where: dict[str, list[str]] = {}
    for path in PRODUCT:
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, ast.ClassDef) else \
                [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else \
                [node.target.id] if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) else []
            for name in names:
                if not name.startswith("_") and name not in ("log", "T") and name not in PER_COMMAND:
                    where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert {n: w for n, w in where.items() if len(w) > 1} == {}
