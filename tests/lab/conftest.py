"""One real lab per test session (scripts/lab), shared by every lab test, and the helpers the lab tests share.

After each test every domain and secret on every lab host is removed (``clean``).

- ``lab`` / ``clean``: a ``LabForTests`` — the lab client (``labkit.client.Lab``, which the bench uses too)
  plus what only the tests ask of it: whether a domain has a job, waiting for one, a snapshot of every host,
  removing a pool or network a test made.
- ``migcoord``: the real CLI in a subprocess, in the foreground or in the background, with this test's
  journal and lock directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest

from labkit.client import HOSTS, ROOT, Lab, run_lab

# The commands that take --journal and --lock-dir (the others write neither).
JOURNALED = ("migrate", "evacuate")


class LabForTests(Lab):
    """The lab client with the witnesses only the tests use."""

    def job_active(self, host: str, name: str) -> bool:
        """Whether ``name`` on ``host`` has a job (virDomainGetJobStats type other than NONE). Raises
        libvirtError when the host has no such domain."""
        return self.conn(host).lookupByName(name).jobStats(0).get("type", 0) != libvirt.VIR_DOMAIN_JOB_NONE

    def wait_for_job(self, *names: str, host: str = "src", timeout: float = 60) -> str:
        """Wait until one of ``names`` on ``host`` has a job (a migration started); return that one.
        AssertionError after ``timeout`` s. A domain not (or no longer) on the host has no job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in names:
                try:
                    if self.job_active(host, n):
                        return n
                except libvirt.libvirtError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"no migration job started on {host} for {', '.join(names)} within {timeout:g}s")

    def remove_pool(self, name: str) -> None:
        """Stop and undefine the storage pool ``name`` on every lab host that has it (not its files)."""
        for h in self.env["hosts"]:
            try:
                p = self.conn(h).storagePoolLookupByName(name)
            except libvirt.libvirtError:
                continue
            if p.isActive():
                p.destroy()
            p.undefine()

    def remove_network(self, name: str) -> None:
        """Stop and undefine the libvirt network ``name`` on every lab host that has it."""
        for h in self.env["hosts"]:
            try:
                n = self.conn(h).networkLookupByName(name)
            except libvirt.libvirtError:
                continue
            if n.isActive():
                n.destroy()
            n.undefine()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every host's secrets (XML + stored value digest), domains (state, persistent XML) and networks:
        equal before and after means nothing changed anywhere."""
        out = {}
        for h in self.env["hosts"]:
            c = self.conn(h)
            out[h] = {
                "secrets": {u: (self.secret_xml(h, u), self.digest(h, u)) for u in sorted(self.secret_uuids(h))},
                "domains": {d.name(): (d.state()[0], d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                            for d in c.listAllDomains(0)},
                "networks": sorted(n.name() for n in c.listAllNetworks(0)),
            }
        return out


@pytest.fixture(scope="session")
def lab() -> Iterator[LabForTests]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (run scripts/test as root)")
    run_lab("up", "--hosts", HOSTS)
    env = json.loads(run_lab("env", "--json"))
    the_lab = LabForTests(env)
    yield the_lab
    the_lab.close()
    run_lab("down")


@pytest.fixture
def clean(lab: LabForTests) -> Iterator[LabForTests]:
    """The lab, emptied after the test."""
    yield lab
    lab.wipe()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A unique domain name for this test."""
    base = request.node.name.replace("test_", "").replace("[", "-").replace("]", "")
    return f"{base[:40]}-{uuidlib.uuid4().hex[:6]}".replace("_", "-")


@dataclass(frozen=True)
class Ran:
    """A finished CLI run: exit code and output (bytes, and decoded)."""
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace")


class Migcoord:
    """``python -m coordinator ARGS`` from the checkout, as an operator runs it.

    ``migrate`` and ``evacuate`` (the first argument) get ``--journal`` (``journal`` for a run in the
    foreground, ``bg_journal`` in the background, unless ``journal_path`` names another) and ``--lock-dir``
    in the test's directory, each unless the arguments give it. A run whose first argument is an option
    (``--config FILE ...``) gets neither: the settings file names them.
    ``names=True`` runs it in a private mount namespace whose /etc/hosts is the lab's, so the lab hosts are
    reachable by NAME (``qemu+tcp://src/system``), which the transport rule counts as remote: a real
    plaintext channel to a real libvirtd that still never leaves this machine."""

    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.lab = lab
        self.journal = tmp_path / "journal.jsonl"
        self.bg_journal = tmp_path / "bg.jsonl"
        self.lock_dir = tmp_path / "locks"

    def argv(self, args: tuple[str, ...], journal_path: Path, names: bool = False) -> list[str]:
        cmd = [sys.executable, "-m", "coordinator", *args]
        if args and args[0] in JOURNALED:
            if "--journal" not in args:
                cmd += ["--journal", str(journal_path)]
            if "--lock-dir" not in args:
                cmd += ["--lock-dir", str(self.lock_dir)]
        if names:
            cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                   f'mount --bind {self.lab.dir / "hosts"} /etc/hosts && exec "$@"', "sh", *cmd]
        return cmd

    def __call__(self, *args: str, input: bytes | None = None, journal_path: Path | None = None,
                 timeout: float = 180, names: bool = False) -> Ran:
        """Run it to its end (at most ``timeout`` s)."""
        r = subprocess.run(self.argv(args, journal_path or self.journal, names), capture_output=True, input=input,
                           timeout=timeout, cwd=ROOT)
        return Ran(r.returncode, r.stdout, r.stderr)

    def background(self, *args: str, journal_path: Path | None = None,
                   stderr: Any = subprocess.PIPE) -> subprocess.Popen:
        """Start it and return at once (stdout piped; stderr piped unless given)."""
        return subprocess.Popen(self.argv(args, journal_path or self.bg_journal), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=stderr)

    def events(self, journal: Path | None = None) -> list[dict[str, Any]]:
        """The journal's records (the foreground run's journal unless another is named), oldest first."""
        return [json.loads(line) for line in (journal or self.journal).read_text().splitlines()]


@pytest.fixture
def migcoord(lab: LabForTests, tmp_path: Path) -> Migcoord:
    """The real CLI in a subprocess (``Migcoord``)."""
    return Migcoord(lab, tmp_path)
