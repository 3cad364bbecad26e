"""core/exit_codes: one definition of every exit code; --help is generated from it, and no module
writes an exit code as a number again (an AST scan of coordinator/)."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from coordinator.core.exit_codes import ExitCode, for_signal, help_text

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "coordinator"
DEFINITION = PACKAGE / "core" / "exit_codes.py"
EXIT_NAMES = {"code", "rc", "status"}  # in cli/ these are exit codes; elsewhere a child process's


def _is_exit_name(node: ast.expr, in_cli: bool) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "exit_code" in name or in_cli and name in EXIT_NAMES


def _int_literals(node: ast.AST | None) -> list[int]:
    """Integer constants that ARE the value (a number, either branch of ``a if c else b``, the
    members of a tuple/list/set), not ones nested deeper (an index, an argument)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _int_literals(node.body) + _int_literals(node.orelse)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for e in node.elts for v in _int_literals(e)]
    return []


def _returns_exit_code(fn: ast.FunctionDef | ast.AsyncFunctionDef, in_cli: bool) -> bool:
    returns_int = isinstance(fn.returns, ast.Name) and fn.returns.id == "int" or \
        isinstance(fn.returns, ast.Constant) and fn.returns.value == "int"
    return "exit_code" in fn.name or (in_cli and returns_int)


def exit_code_literals(source: str, in_cli: bool) -> list[str]:
    """Where ``source`` writes an exit code as a number: ``SystemExit(2)``, ``sys.exit(1)``,
    ``parser.exit(2, …)``; ``code == 130``, ``e.exit_code in (1, 2)``; ``exit_code = 3``;
    ``128 + signum``; ``return 0`` in a function that returns an exit code (in cli/ every
    ``-> int`` function does; elsewhere one named ``*exit_code*``)."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call) and node.args and _int_literals(node.args[0]):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("SystemExit", "exit") or \
                    isinstance(f, ast.Attribute) and f.attr in ("exit", "_exit"):
                found.append(f"{line}: exit call with a number")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_exit_name(s, in_cli) for s in sides) and any(_int_literals(s) for s in sides):
                found.append(f"{line}: an exit code compared with a number")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_is_exit_name(t, in_cli) for t in targets) and _int_literals(node.value):
                found.append(f"{line}: an exit code assigned a number")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and \
                128 in _int_literals(node.left) + _int_literals(node.right):
            found.append(f"{line}: 128 + a signal (core.exit_codes.for_signal)")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _returns_exit_code(node, in_cli):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Return) and _int_literals(sub.value):
                    found.append(f"{sub.lineno}: {node.name} returns a number")
    return found


def test_no_exit_code_is_written_as_a_number_outside_the_exit_code_module():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != DEFINITION:
            hits = exit_code_literals(path.read_text(), in_cli=path.parent.name == "cli")
            bad += [f"{path.relative_to(ROOT)}:{h}" for h in hits]
    assert bad == [], "use coordinator.core.exit_codes.ExitCode"


@pytest.mark.parametrize("source, in_cli", [
    ("raise SystemExit(2)\n", False),
    ("import sys\nsys.exit(1)\n", False),
    ("def f(p):\n    p.exit(2, 'x')\n", False),
    ("def f(code):\n    return code == 130\n", True),
    ("def f(e):\n    return e.exit_code in (1, 2)\n", False),
    ("class E:\n    exit_code = 3\n", False),
    ("def f(s):\n    return 128 + s\n", False),
    ("def run(a) -> int:\n    return 1 if a else 0\n", True),
    ("def exit_code_for(a):\n    return 4\n", False),
])
def test_the_scan_finds_each_way_of_writing_an_exit_code(source, in_cli):
    assert exit_code_literals(source, in_cli)


@pytest.mark.parametrize("source, in_cli", [
    ("def f(xs) -> int:\n    return len(xs[0:1])\n", False),   # not cli, not an exit-code function
    ("def f(e):\n    return e.exit_code in (ExitCode.BLOCKED, ExitCode.USAGE)\n", False),
    ("def run(a) -> int:\n    return ExitCode.OK\n", True),
    ("def f(rows):\n    return rows[0]\n", True),
    ("def f(p):\n    return p.returncode != 0\n", False),   # a child process's status, not ours
])
def test_the_scan_leaves_other_numbers_alone(source, in_cli):
    assert exit_code_literals(source, in_cli) == []


def test_help_epilog_is_generated_from_the_enum_with_every_code():
    main = importlib.import_module("coordinator.cli.main")
    assert main.EXIT_CODES == help_text() == main.build_parser().epilog
    listed = {int(c) for line in help_text().splitlines()[1:]
              for c in re.match(r"\s+(\d+)(?:\s*/\s*(\d+))?\s|", line).groups() if c}
    assert listed == {int(c) for c in ExitCode}


def test_every_code_has_its_own_docstring_and_signals_follow_the_shell():
    assert all(c.__doc__ and c.__doc__ != ExitCode.__doc__ for c in ExitCode)
    assert (for_signal(2), for_signal(15)) == (ExitCode.SIGINT, ExitCode.SIGTERM)


def test_check_and_control_epilogs_list_their_codes_from_the_enum():
    from coordinator.cli import cmd_check, cmd_control

    def codes(text: str) -> list[int]:
        return [int(m.group(1)) for line in text.splitlines()[1:] if (m := re.match(r"  (\d+) ", line))]

    assert codes(cmd_check.EXIT_HELP) == [ExitCode.OK, ExitCode.BLOCKED, ExitCode.USAGE, ExitCode.UNKNOWN]
    assert codes(cmd_control.EXIT_HELP) == [ExitCode.OK, ExitCode.BLOCKED, ExitCode.USAGE]
    assert help_text({ExitCode.BUSY: "held\nby another run"}) == "exit codes:\n  75 held\n     by another run"
