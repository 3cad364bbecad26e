"""coordinator.files.atomic: every file the tool writes is replaced atomically (mkstemp in the
target directory, fsync, rename) and never through a symlink it did not make (house rule 16)."""
from __future__ import annotations

import os
import stat

import pytest

from coordinator.core.errors import BadInput
from coordinator.files.atomic import check_target, open_append, write_atomic


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    write_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_fixed_temporary_name_is_not_used(tmp_path):
    # The old code wrote ".report.json.tmp" and followed a symlink planted there.
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / ".report.json.tmp").symlink_to(victim)
    write_atomic(tmp_path / "report.json", b"{}")
    assert victim.read_text() == "untouched"
    assert (tmp_path / "report.json").read_bytes() == b"{}"


def test_symlink_target_is_refused_not_written_through_or_replaced(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    with pytest.raises(BadInput, match="symbolic link"):
        write_atomic(link, b"{}")
    assert victim.read_text() == "untouched" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "victim"]


@pytest.mark.parametrize("make, match", [
    (lambda t: t / "missing" / "r.json", "does not exist"),
    (lambda t: (t / "f").write_text("") or t / "f" / "r.json", "not a directory"),
    (lambda t: (t / "d").mkdir() or t / "d", "is a directory"),
])
def test_check_target_refuses(tmp_path, make, match):
    with pytest.raises(BadInput, match=match):
        check_target(make(tmp_path))


def test_failed_write_leaves_target_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_open_append_refuses_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("")
    (tmp_path / "j").symlink_to(victim)
    with pytest.raises(BadInput, match="symbolic link"):
        open_append(tmp_path / "j")


def test_open_append_refuses_a_planted_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "j", 0o600)  # no reader: a blocking open would hang the run
    with pytest.raises(BadInput, match="cannot be opened|not a regular file"):
        open_append(tmp_path / "j")


def test_open_append_accepts_dev_null():
    os.close(open_append("/dev/null"))
