"""The documentation matches the code: README stays short, every test docs/security.md cites exists,
every relative link resolves, and the figures and names the docs quote are the code's own values."""
from __future__ import annotations

import ast
import re
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECURITY = ROOT / "docs" / "security.md"
OPERATIONS = ROOT / "docs" / "operations.md"
LINKED_DOCS = [README, ROOT / "CONTRIBUTING.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]

# `tests/unit/test_x.py::test_name`, `tests/lab/test_y.py::test_name[param]`, or `::test_name` alone: a
# test in the file named last before it.
TEST_ID = re.compile(r"(?P<file>tests/(?:unit|lab)/[\w/]+\.py)?::(?P<name>test_\w+)(?:\[[^\]`]*\])?")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
CHECK_ID = re.compile(r"`([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)`")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(path: Path, heading: str) -> str:
    """The body of the section under ``heading``, up to the next heading of the same or a higher level."""
    doc = text(path)
    m = re.search(rf"^(#+) {re.escape(heading)}$", doc, re.M)
    assert m, f"{path.name}: no section {heading!r}"
    body = doc[m.end():]
    end = re.search(rf"^#{{1,{len(m.group(1))}}} ", body, re.M)
    return body[:end.start()] if end else body


def table_rows(body: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows (header and separator dropped)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in body.splitlines() if line.startswith("|")]
    return rows[2:]


def cited_tests(doc: str) -> list[tuple[str, str]]:
    cited, last = [], None
    for m in TEST_ID.finditer(doc):
        last = m.group("file") or last
        assert last, f"::{m.group('name')} is cited before any test file is named"
        cited.append((last, m.group("name")))
    return cited


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces become hyphens."""
    h = re.sub(r"[`*_\[\]()]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text(path), re.M)}


# ------------------------------------------------------------------ size and structure

def test_readme_is_at_most_12_kib():
    assert README.stat().st_size <= 12 * 1024, f"README.md is {README.stat().st_size} bytes: move detail to docs/"


# ------------------------------------------------------------------ security.md cites real tests

def test_every_test_docs_security_cites_exists():
    cited = cited_tests(text(SECURITY))
    assert len(cited) > 50  # the guarantees cite their tests; a parse that finds none proves nothing
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.is_file() or not re.search(rf"^\s*(?:async\s+)?def {name}\(", text(path), re.M):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"


def test_a_continuation_id_is_a_test_in_the_file_named_last():
    doc = ("`tests/unit/test_docs.py::test_every_test_docs_security_cites_exists`, "
           "`::test_a_test_that_was_renamed[x]`")
    cited = cited_tests(doc)
    assert cited == [("tests/unit/test_docs.py", "test_every_test_docs_security_cites_exists"),
                     ("tests/unit/test_docs.py", "test_a_test_that_was_renamed")]
    assert not re.search(r"^\s*def test_a_test_that_was_renamed\(", text(Path(__file__)), re.M)


# ------------------------------------------------------------------ links

@pytest.mark.parametrize("doc", LINKED_DOCS, ids=[str(p.relative_to(ROOT)) for p in LINKED_DOCS])
def test_every_relative_link_points_to_an_existing_file_and_heading(doc):
    broken = []
    for m in LINK.finditer(text(doc)):
        target = m.group("target")
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        missing_heading = bool(fragment) and dest.suffix == ".md" and fragment not in anchors(dest)
        if not dest.exists() or missing_heading:
            broken.append(target)
    assert not broken, f"{doc.name}: broken links {broken}"


# ------------------------------------------------------------------ figures and names come from the code

def test_readme_exit_codes_are_the_codes_definitions():
    from coordinator.cli.main import build_parser
    from coordinator.core import errors

    rows = table_rows(section(README, "Exit codes"))
    documented: dict[int, str] = {}
    for code_cell, name_cell, _meaning in rows:
        for code in code_cell.split("/"):
            documented[int(code)] = name_cell.strip("`")
    # The codes are those `migcoord --help` lists.
    helped = set()
    for line in (build_parser().epilog or "").splitlines():
        m = re.match(r"\s+(\d+)(?:\s*/\s*(\d+))?\s", line)
        helped |= {int(c) for c in m.groups() if c} if m else set()
    assert set(documented) == helped
    # Each name is the exception that carries the code.
    classes = {n: c for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, errors.MigcoordError)}
    for code, name in documented.items():
        if name == "Interrupted":
            sig = {130: signal.SIGINT, 143: signal.SIGTERM}[code]
            assert errors.Interrupted("x", signum=sig).exit_code == code
        elif name == "—":
            assert all(c.exit_code != code for c in classes.values()), code
        else:
            assert classes[name].exit_code == code, (code, name)
    assert {c.exit_code for c in classes.values() if isinstance(c.exit_code, int)} <= set(documented)


def _module_constant(name: str) -> object:
    """The one module-level definition of ``name`` under coordinator/ (house rule 20), read from the source."""
    found = []
    for path in (ROOT / "coordinator").rglob("*.py"):
        for node in ast.parse(text(path)).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found.append((path, ast.literal_eval(node.value)))
    assert len(found) == 1, f"{name}: {found}"
    return found[0][1]


def test_the_lease_settle_time_the_docs_quote_is_the_codes():
    quoted = re.findall(r"reads it back after ([\d.]+) s", text(OPERATIONS))
    assert quoted and {float(q) for q in quoted} == {_module_constant("LEASE_SETTLE_S")}


def test_the_hostile_input_row_count_the_docs_quote_is_the_tests():
    import test_cli_hostile_input

    quoted = re.findall(r"\((\d+) rows\)", text(SECURITY))
    assert quoted and {int(q) for q in quoted} == {len(test_cli_hostile_input.ROWS)}


def test_every_check_id_the_docs_name_is_registered():
    import checks

    docs = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for d in docs for m in CHECK_ID.findall(text(d))}
    assert len(named) > 5
    assert named - set(checks.REGISTRY.checks) == set()


def test_the_retry_table_is_the_classifiers_table():
    import libvirt

    from coordinator.virt.errors import TRANSIENT_ERRORS

    rows = table_rows(section(OPERATIONS, "Retry classification"))
    documented = {(getattr(libvirt, code.strip("`")), None if dom == "any" else getattr(libvirt, dom.strip("`")))
                  for code, dom, _seen in rows}
    assert documented == set(TRANSIENT_ERRORS)


def test_the_default_deadlines_and_intervals_the_docs_quote_are_the_codes():
    from coordinator.cli.render import PROGRESS_EVERY_S
    from coordinator.core import defaults

    ops = text(OPERATIONS)
    m = re.search(r"the deadline is (\d+) s per GiB of guest memory, at least (\d+) s; stall (\d+) s", ops)
    assert m and tuple(map(float, m.groups())) == (
        defaults.TIMEOUT_PER_GIB_S, defaults.TIMEOUT_MINIMUM_S, defaults.STALL_TIMEOUT_S)
    m = re.search(r"default (\d+) attempts, (\d+) s", ops)
    assert m and (int(m.group(1)), float(m.group(2))) == (defaults.RETRY_ATTEMPTS, defaults.RETRY_MAX_SECONDS)
    assert f"at most every {PROGRESS_EVERY_S:g} s per domain" in ops
