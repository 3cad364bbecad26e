"""One real lab per test session (scripts/lab), shared by every lab test.

After each test every domain and secret on every lab host is removed (``clean``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid as uuidlib
from pathlib import Path

import pytest

from labkit.client import HOSTS, ROOT, Lab, run_lab


@pytest.fixture(scope="session")
def lab() -> Lab:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (run scripts/test as root)")
    run_lab("up", "--hosts", HOSTS)
    env = json.loads(run_lab("env", "--json"))
    the_lab = Lab(env)
    yield the_lab
    the_lab.close()
    run_lab("down")


@pytest.fixture
def clean(lab: Lab) -> Lab:
    """The lab, emptied after the test."""
    yield lab
    lab.wipe()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A unique domain name for this test."""
    base = request.node.name.replace("test_", "").replace("[", "-").replace("]", "")
    return f"{base[:40]}-{uuidlib.uuid4().hex[:6]}".replace("_", "-")


@pytest.fixture
def migcoord(tmp_path: Path):
    """Run the real CLI in a subprocess; returns CompletedProcess (text)."""
    journal = tmp_path / "journal.jsonl"

    def run(*args: str, input: bytes | None = None, journal_path: Path | None = journal,
            timeout: float = 180) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "coordinator", *args]
        if journal_path is not None and args and args[0] == "migrate" and "--journal" not in args:
            cmd += ["--journal", str(journal_path)]
        cmd += ["--lock-dir", str(tmp_path / "locks")] if args and args[0] == "migrate" else []
        r = subprocess.run(cmd, capture_output=True, input=input, timeout=timeout, cwd=ROOT)
        r.stdout_text = r.stdout.decode(errors="replace")  # type: ignore[attr-defined]
        r.stderr_text = r.stderr.decode(errors="replace")  # type: ignore[attr-defined]
        return r

    run.journal = journal  # type: ignore[attr-defined]
    return run


