"""core/metrics (the textfile, parsed back with prometheus_client's own parser), files/atomic (atomic,
never through a symlink), the throttled event printer, and exit code 75 for a held lock."""
from __future__ import annotations

import io
import json
import os

import pytest

from coordinator.cli.render import EventPrinter
from coordinator.core.errors import Busy
from coordinator.core.metrics import DomainMetrics, RunMetrics, render
from coordinator.files.atomic import write_atomic

RUN = RunMetrics(command="evacuate", source="qemu+ssh://hv1/system", exit_code=4, finished_at=1_800_000_000.5,
                 duration_s=42.25, domains=[
                     DomainMetrics("web1", "migrated", "qemu+ssh://hv2/system", 3.5, 1_048_576),
                     DomainMetrics("db1", "unplaceable", None, 0.0, 0, ("CPU-INCOMPATIBLE", "SECRET-VALUE-MISMATCH")),
                     DomainMetrics('we"ird\\name', "failed", "qemu+ssh://hv3/system", 9.0, 2048)])


def _samples(text: str) -> dict[str, list]:
    # prometheus_client is a test extra only (scripts/test-debian-floor runs without it)
    parser = pytest.importorskip("prometheus_client.parser")
    text_string_to_metric_families = parser.text_string_to_metric_families
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge" and fam.documentation
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_textfile_parses_with_prometheus_client():
    m = _samples(render(RUN))
    base = {"command": "evacuate", "source": "qemu+ssh://hv1/system"}
    assert m["migcoord_last_run_timestamp_seconds"] == [(base, 1_800_000_000.5)]
    assert m["migcoord_last_run_exit_code"] == [(base, 4.0)]
    assert m["migcoord_last_run_duration_seconds"] == [(base, 42.25)]
    assert {lb["result"]: v for lb, v in m["migcoord_domains"]} == {"moved": 1, "blocked": 1, "failed": 1,
                                                                    "not_started": 0}
    assert m["migcoord_bytes_moved"] == [(base, 1_050_624.0)]
    results = {lb["domain"]: lb for lb, _ in m["migcoord_domain_result"]}
    assert results["db1"]["blocking_checks"] == "CPU-INCOMPATIBLE,SECRET-VALUE-MISMATCH"
    assert results["db1"]["result"] == "blocked" and results["web1"]["blocking_checks"] == ""
    assert results['we"ird\\name']["result"] == "failed"  # label escaping round-trips
    assert dict((lb["domain"], v) for lb, v in m["migcoord_domain_bytes_moved"])["web1"] == 1_048_576


def test_an_empty_run_still_says_when_and_how_it_ended():
    m = _samples(render(RunMetrics("migrate", "qemu:///system", 75, 1.0, 0.1)))
    assert m["migcoord_last_run_exit_code"][0][1] == 75 and "migcoord_domain_result" not in m


def test_write_atomic_replaces_whole_file(tmp_path):
    p = tmp_path / "m.prom"
    p.write_text("old")
    write_atomic(p, b"new\n", mode=0o644)
    assert p.read_bytes() == b"new\n" and oct(p.stat().st_mode & 0o777) == "0o644"
    assert [x.name for x in tmp_path.iterdir()] == ["m.prom"]  # no temporary left


def _progress(pct, done, dom="vm"):
    return {"event": "progress", "percent": pct, "data_processed": done, "data_remaining": 100 - done,
            "domain": dom}


def test_off_a_tty_progress_is_printed_when_it_changed_and_at_most_every_few_seconds():
    now = [0.0]
    out = io.StringIO()
    p = EventPrinter(out, clock=lambda: now[0], every_s=5)
    p(_progress(0, 0))                 # first: printed
    now[0] = 1
    p(_progress(10, 10))               # changed but too soon
    now[0] = 6
    p(_progress(10, 10))               # due, changed since the last printed one
    now[0] = 20
    p(_progress(10, 10))               # due but unchanged
    p(_progress(0, 0, dom="other"))    # another domain has its own clock
    p({"event": "domain-done", "domain": "vm", "state": "migrated"})  # other events always
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(e["event"], e.get("percent"), e["domain"]) for e in lines] == [
        ("progress", 0, "vm"), ("progress", 10, "vm"), ("progress", 0, "other"), ("domain-done", None, "vm")]


def test_quiet_prints_nothing():
    out = io.StringIO()
    p = EventPrinter(out, quiet=True)
    p(_progress(0, 0))
    p({"event": "domain-done", "domain": "vm", "state": "migrated"})
    assert out.getvalue() == ""


def test_busy_is_ex_tempfail():
    assert Busy("x").exit_code == 75 == os.EX_TEMPFAIL
