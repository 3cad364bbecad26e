"""coordinator.steps.journal: owner-only JSON-lines audit file; bytes are refused."""
from __future__ import annotations

import json
import stat

import pytest

from coordinator.steps.journal import Journal


def test_records_are_json_lines(tmp_path):
    path = tmp_path / "sub" / "journal.jsonl"
    j = Journal(path, run_id="run1")
    j.record("migration-start", uuid="u1", flags=["LIVE"])
    j.record("migration-done", uuid="u1", attempts=2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["run"], e["event"]) for e in lines] == [("run1", "migration-start"), ("run1", "migration-done")]
    assert lines[0]["flags"] == ["LIVE"] and lines[1]["attempts"] == 2
    assert all(isinstance(e["ts"], float) and e["ts"] > 1e9 for e in lines)
    assert lines == j.events


def test_file_is_owner_only(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal(path).record("x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_appends_across_instances(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal(path, run_id="a").record("one")
    Journal(path, run_id="b").record("two")
    assert [json.loads(line)["run"] for line in path.read_text().splitlines()] == ["a", "b"]


@pytest.mark.parametrize("value", [b"secret", bytearray(b"secret")])
def test_bytes_field_refused_and_nothing_written(tmp_path, value):
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    with pytest.raises(TypeError):
        j.record("secret-set", uuid="u1", value=value)
    assert not path.exists()
    assert j.events == []


def test_without_path_in_memory_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    j = Journal(None, run_id="mem")
    j.record("blocked", reasons=["r"])
    assert j.path is None
    assert [(e["run"], e["event"], e["reasons"]) for e in j.events] == [("mem", "blocked", ["r"])]
    assert list(tmp_path.iterdir()) == []


def test_run_id_generated():
    a, b = Journal(), Journal()
    assert len(a.run_id) == 12 and a.run_id != b.run_id


def test_nested_bytes_refused_and_nothing_kept(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    with pytest.raises(TypeError):
        j.record("x", values=[b"secret"])
    assert j.events == [] and not (tmp_path / "j.jsonl").exists()


def test_fields_cannot_spoof_run_or_time(tmp_path):
    j = Journal(tmp_path / "j.jsonl", run_id="real")
    j.record("y", run="spoofed", ts=0)
    line = json.loads((tmp_path / "j.jsonl").read_text())
    assert (line["run"], line["event"]) == ("real", "y") and line["ts"] > 0


# -- issue #12 --------------------------------------------------------------------------------------

def test_journal_symlink_is_refused_before_anything(tmp_path):
    from coordinator.core.errors import BadInput
    victim = tmp_path / "victim"
    victim.write_text("")
    (tmp_path / "j").symlink_to(victim)
    with pytest.raises(BadInput, match="symbolic link"):
        Journal(tmp_path / "j")
    assert victim.read_text() == ""


def test_journal_swapped_for_a_symlink_later_is_not_written_through(tmp_path, caplog):
    victim = tmp_path / "victim"
    victim.write_text("")
    j = Journal(tmp_path / "j")
    (tmp_path / "j").symlink_to(victim)
    j.record("x")
    assert victim.read_text() == "" and j.failed


def test_disk_full_is_one_warning_not_an_exception(caplog):
    import logging
    j = Journal("/dev/full")
    with caplog.at_level(logging.WARNING, logger="migcoord"):
        for i in range(3):
            j.record("e", i=i)
    assert len(j.events) == 3  # kept in memory
    assert j.failed and "space" in j.failed.lower()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "/dev/full" in warnings[0].getMessage()
