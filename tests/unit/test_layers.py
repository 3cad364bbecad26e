"""The architecture, held by a test (ARCHITECTURE.md draws it).

Every import in coordinator/ and checks/ — at module level and inside functions — must point to
the module's own package or down a layer; the import graph has no cycle; only the seams import
their outside system (libvirt, paramiko) and only the command line imports argparse.
"""
from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module may import its own package (the same entry) or any entry of a lower layer.
LAYERS: list[tuple[str, ...]] = [
    ("coordinator.core",),                       # pure values and decisions
    ("coordinator.files",),                      # the local-filesystem seam
    ("coordinator.virt", "coordinator.ssh"),     # the libvirt and SSH seams
    ("coordinator.steps",),                      # one step of a run each: keys, provision, monitor, ...
    ("checks",),                                 # the pre-flight checks
    ("coordinator.flows",),                      # whole operations: migrate, evacuate, plan
    ("coordinator.cli",),                        # the command line
    ("coordinator.__main__",),                   # python -m coordinator
    ("coordinator",),                            # the public facade (coordinator/__init__.py)
]
# Outside systems and the one package allowed to use each.
SEAMS = {"libvirt": "coordinator.virt", "paramiko": "coordinator.ssh", "argparse": "coordinator.cli"}


def _entry(module: str) -> tuple[int, str]:
    """(layer index, entry) of a project module: the longest entry that is a prefix of it."""
    best: tuple[int, str] | None = None
    for i, entries in enumerate(LAYERS):
        for e in entries:
            if (module == e or module.startswith(e + ".")) and (best is None or len(e) > len(best[1])):
                best = (i, e)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and ARCHITECTURE.md")
    return best


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for pkg in ("coordinator", "checks"):
        for p in sorted((root / pkg).rglob("*.py")):
            parts = p.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = p
    return out


def _imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, nested ones included; relative
    imports resolved; ``from pkg import name`` counts as pkg.name when that is a module, else as pkg."""
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            yield from ((t, node.lineno) for t in (subs or [target]))


def violations(root: Path) -> list[str]:
    mods = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    problems = []
    for m, path in mods.items():
        layer, entry = _entry(m)
        for target, line in _imports(m, path, mods):
            top = target.split(".")[0]
            if top in SEAMS and not (m == SEAMS[top] or m.startswith(SEAMS[top] + ".")):
                problems.append(f"{path.relative_to(root)}:{line}: imports {top}; only {SEAMS[top]} may")
            if target not in mods:
                continue  # not a project module (stdlib, third party, or a name inside a module)
            graph[m].add(target)
            t_layer, t_entry = _entry(target)
            if t_entry != entry and t_layer >= layer:
                problems.append(f"{path.relative_to(root)}:{line}: {m} ({entry}) imports {target} "
                                f"({t_entry}), which is not below it")
    problems += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself.
    A package's __init__ importing its own submodules is not a cycle by itself; a submodule
    importing its package's __init__ back is."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_import_points_down_a_layer_and_there_is_no_cycle():
    assert violations(ROOT) == []


def test_every_module_has_a_layer():
    for m in _modules(ROOT):
        _entry(m)


def _type_checking_imports(path: Path) -> dict[str, str]:
    """name → module of each ``from MODULE import name`` under the module's ``if TYPE_CHECKING:``."""
    out: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module, ast.dump(imp)
                out.update({a.asname or a.name: imp.module for a in imp.names})
    return out


def test_each_public_name_comes_from_the_module_the_facade_names_and_type_checkers_see_the_same():
    import importlib

    import coordinator
    exports = coordinator._EXPORTS  # the facade's own table: public name → the module it is imported from
    assert sorted(coordinator.__all__) == sorted([*exports, "__version__"])
    for name, module in exports.items():
        assert getattr(coordinator, name) is getattr(importlib.import_module(module), name), name
    assert _type_checking_imports(ROOT / "coordinator" / "__init__.py") == exports


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    for pkg in ("coordinator", "checks"):
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize("files, expected", [
    pytest.param({"coordinator/core/__init__.py": "", "coordinator/core/a.py": "from coordinator.flows import m\n",
                  "coordinator/flows/__init__.py": "", "coordinator/flows/m.py": ""},
                 ["coordinator.core.a (coordinator.core) imports coordinator.flows.m"], id="upward"),
    pytest.param({"checks/x.py": "def f():\n    from coordinator.cli.main import _keyring\n",
                  "coordinator/cli/__init__.py": "", "coordinator/cli/main.py": ""},
                 ["checks.x (checks) imports coordinator.cli.main"], id="upward-inside-a-function"),
    pytest.param({"coordinator/steps/__init__.py": "", "coordinator/steps/a.py": "from . import b\n",
                  "coordinator/steps/b.py": "from coordinator.steps import a\n"},
                 ["import cycle: coordinator.steps.a -> coordinator.steps.b"], id="cycle-within-a-layer"),
    pytest.param({"coordinator/core/__init__.py": "", "coordinator/core/p.py": "import libvirt\n"},
                 ["imports libvirt; only coordinator.virt may"], id="libvirt-outside-the-seam"),
    pytest.param({"coordinator/virt/__init__.py": "", "coordinator/virt/h.py": "from ..ssh import r\n",
                  "coordinator/ssh/__init__.py": "", "coordinator/ssh/r.py": ""},
                 ["coordinator.virt.h (coordinator.virt) imports coordinator.ssh.r"], id="sibling-seams"),
    pytest.param({"coordinator/core/__init__.py": "", "coordinator/core/a.py": "from .b import x\n",
                  "coordinator/core/b.py": "x = 1\n", "coordinator/steps/__init__.py": "",
                  "coordinator/steps/s.py": "from coordinator.core import a\n"}, [], id="clean"),
])
def test_the_checker_finds_what_it_must(tmp_path, files, expected):
    found = violations(_tree(tmp_path, files))
    assert len(found) == len(expected), found
    for want in expected:
        assert any(want in f for f in found), (want, found)
