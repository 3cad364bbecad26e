"""Files the tool writes or adds to are ours or refused, and bad input creates none of them:
no report through a symlinked directory, no journal someone else owns or others may write, no journal
directories before the input is validated, no lock file in a dry run or Ansible check mode."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coordinator.cli.main import main
from coordinator.core.errors import BadInput, Busy
from coordinator.core.model import MigrationResult
from coordinator.core.timings import PhaseRecorder
from coordinator.files.atomic import check_target, open_append, write_atomic
from coordinator.steps.journal import Journal
from coordinator.steps.locks import domain_lock, exclusive
from coordinator.steps.parameters import MigrateOptions, Runtime

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib" / "ansible"
SRC, DST = "qemu+tls://hv1.example/system", "qemu+tls://hv2.example/system"
UUID = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another uid")


# -- reports and other files written atomically --------------------------------------------------------

def _linked_dir(tmp: Path) -> tuple[Path, Path]:
    real = tmp / "real"
    real.mkdir()
    (tmp / "link").symlink_to(real)
    return real, tmp / "link"


def test_a_report_through_a_symlinked_directory_is_refused(tmp_path):
    real, link = _linked_dir(tmp_path)
    with pytest.raises(BadInput, match="directory .*link is a symbolic link"):
        check_target(link / "r.json", "report")
    with pytest.raises(BadInput, match="is a symbolic link"):
        write_atomic(link / "r.json", b"{}", what="report")
    assert list(real.iterdir()) == []


def test_evacuate_report_through_a_symlinked_directory_is_exit_2_before_connecting(tmp_path, capsys):
    _real, link = _linked_dir(tmp_path)
    rc = main(["evacuate", "--from", SRC, "--to", DST, "--dry-run", "--report", str(link / "r.json"),
               "--lock-dir", str(tmp_path / "locks")])
    err = capsys.readouterr().err
    assert rc == 2 and "symbolic link" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "locks").exists()


def test_an_earlier_symlink_we_own_is_followed(tmp_path):
    real, link = _linked_dir(tmp_path)
    (real / "sub").mkdir()
    write_atomic(link / "sub" / "r.json", b"{}")
    assert (real / "sub" / "r.json").read_bytes() == b"{}"


@root_only
def test_an_earlier_symlink_owned_by_someone_else_is_refused(tmp_path):
    real, link = _linked_dir(tmp_path)
    (real / "sub").mkdir()
    os.lchown(link, 12345, 12345)
    with pytest.raises(BadInput, match="owned by uid 12345"):
        write_atomic(link / "sub" / "r.json", b"{}")
    assert list((real / "sub").iterdir()) == []


def test_a_relative_report_path_still_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_atomic(Path("r.json"), b"{}")
    assert (tmp_path / "r.json").read_bytes() == b"{}"


# -- the journal -------------------------------------------------------------------------------------

def test_a_journal_writable_by_others_is_refused_and_left_alone(tmp_path):
    j = tmp_path / "journal.jsonl"
    j.write_text("")
    j.chmod(0o666)
    with pytest.raises(BadInput, match="writable by group or others"):
        Journal(j)
    assert j.read_text() == ""


@root_only
def test_a_journal_owned_by_someone_else_is_refused(tmp_path):
    j = tmp_path / "journal.jsonl"
    j.write_text("")
    j.chmod(0o600)
    os.chown(j, 12345, 12345)
    with pytest.raises(BadInput, match="owned by uid 12345"):
        Journal(j)
    with pytest.raises(BadInput, match="owned by uid 12345"):
        os.close(open_append(j))


def test_a_journal_in_a_symlinked_directory_is_refused(tmp_path):
    real, link = _linked_dir(tmp_path)
    with pytest.raises(BadInput, match="symbolic link"):
        Journal(link / "journal.jsonl")
    assert list(real.iterdir()) == []


def test_making_a_journal_creates_nothing_until_the_first_record(tmp_path):
    path = tmp_path / "a" / "b" / "journal.jsonl"
    j = Journal(path)
    assert not (tmp_path / "a").exists()
    j.record("one")
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700


def test_a_journal_under_a_file_is_refused_when_made(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(BadInput, match="not a directory"):
        Journal(tmp_path / "f" / "sub" / "journal.jsonl")


def test_a_bad_uri_creates_no_journal_directories(tmp_path, capsys):
    journal = tmp_path / "var" / "log" / "migcoord" / "journal.jsonl"
    rc = main(["migrate", "vm1", "--from", "qemu+tcp://[::1/system", "--to", DST, "--journal", str(journal),
               "--lock-dir", str(tmp_path / "locks")])
    assert rc == 2 and "error" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_run_id_that_could_not_go_into_a_lease_is_refused():
    with pytest.raises(BadInput, match="run id"):
        Journal(None, run_id="bad id\nforged")


# -- locks -------------------------------------------------------------------------------------------

def test_a_dry_run_lock_creates_nothing(tmp_path):
    with domain_lock(tmp_path / "locks", UUID, "vm1", create=False):
        pass
    assert not (tmp_path / "locks").exists()
    (tmp_path / "locks").mkdir(mode=0o700)
    with domain_lock(tmp_path / "locks", UUID, "vm1", create=False):
        pass
    assert list((tmp_path / "locks").iterdir()) == []


def test_a_dry_run_still_sees_a_held_lock(tmp_path):
    with domain_lock(tmp_path, UUID, "vm1"), pytest.raises(Busy), domain_lock(tmp_path, UUID, "vm1", create=False):
        pass


@pytest.mark.parametrize("make, words", [
    (lambda d: d.chmod(0o777), "lock directory"),
    (lambda d: ((d / "x.lock").write_text(""), (d / "x.lock").chmod(0o666)), "writable by group or others"),
])
def test_a_lock_directory_or_file_others_may_write_is_refused(tmp_path, make, words):
    d = tmp_path / "locks"
    d.mkdir(mode=0o700)
    make(d)
    with pytest.raises(BadInput, match=words), exclusive(d / "x.lock", "busy", "wait"):
        pass


class _Guest:
    uuid, name = UUID, "vm1"

    def is_active(self) -> bool:
        return True


class _Host:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def host_uuid(self) -> str:
        return self.uri

    def find_guest(self, domain: str):
        return _Guest() if self.uri == SRC else None

    def close(self) -> None:
        pass


def test_a_library_dry_run_creates_no_lock_file(tmp_path, monkeypatch):
    from coordinator.flows import migrate as flow
    seen = []

    def go(run):  # what a dry run does after the lock (plan and checks) needs real hosts: stop here
        seen.append(run.state.options.dry_run)
        return MigrationResult("vm1", UUID, SRC, DST, "dry-run", 0, 0.0)

    monkeypatch.setattr(flow._Run, "go", go)
    rt = Runtime(connect=_Host, lock_dir=tmp_path / "locks", sleep=lambda s: None)
    flow._migrate("vm1", SRC, DST, MigrateOptions(dry_run=True), rt, PhaseRecorder(time.monotonic))
    assert seen == [True] and not (tmp_path / "locks").exists()


# The module as Ansible runs it (arguments in a file), with the connections replaced by fakes and the run
# stopped after the lock: check mode must leave the lock directory uncreated.
MODULE = textwrap.dedent("""
    import functools, runpy, sys
    sys.path.insert(0, sys.argv.pop(1))
    import coordinator
    from coordinator.core.model import MigrationResult
    from coordinator.flows import migrate as flow
    import test_file_safety as t
    coordinator.Runtime = functools.partial(coordinator.Runtime, connect=t._Host)
    flow._Run.go = lambda run: MigrationResult("vm1", t.UUID, t.SRC, t.DST, "dry-run", 0, 0.0)
    runpy.run_module("ansible_collections.migcoord.libvirt.plugins.modules.migrate", run_name="__main__")
""")


def test_ansible_check_mode_creates_no_lock_file(tmp_path):
    pytest.importorskip("ansible")
    args = tmp_path / "args.json"
    locks = tmp_path / "locks"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "domain": "vm1", "src": SRC, "dst": DST, "lock_dir": str(locks), "journal": str(tmp_path / "j" / "j.jsonl"),
        "_ansible_check_mode": True}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CONTRIB), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", MODULE, str(Path(__file__).parent), str(args)], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=120)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out.get("result", {}).get("state") == "dry-run", p.stdout + p.stderr
    assert not locks.exists() and not (tmp_path / "j").exists()


@pytest.mark.parametrize("command", [
    ["migrate", "vm1", "--from", "qemu+tls://127.0.0.1:1/system", "--to", "qemu+tls://127.0.0.2:1/system"],
    ["evacuate", "--from", "qemu+tls://127.0.0.1:1/system", "--to", "qemu+tls://127.0.0.2:1/system"],
])
def test_a_metrics_file_that_cannot_be_written_is_exit_2_before_connecting(tmp_path, capsys, command):
    """Found only at the end, the run's outcome would go unrecorded: refused first, nothing created."""
    (tmp_path / "f").write_text("")
    rc = main([*command, "--metrics-file", str(tmp_path / "f" / "m.prom"), "--lock-dir", str(tmp_path / "locks"),
               "--journal", str(tmp_path / "j" / "journal.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and "metrics file" in err and "not a directory" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "locks").exists() and not (tmp_path / "j").exists()
