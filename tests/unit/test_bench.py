"""scripts/bench helpers that need no lab: the operator's xargs loop (run against a stand-in virsh),
the summaries and targets, the timings and journal profiles, and the tables each printed with the machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from labkit.bench import cli, figures, parts
from labkit.bench.baseline import MANUAL_SCRIPT, xargs_pipeline

FAKE_VIRSH = """#!/bin/sh
# stands in for virsh: records its arguments, answers what the manual procedure reads
echo "$*" >> "$VIRSH_LOG"
case "$*" in
  *secret-dumpxml*) echo "<secret/>" ;;
  *secret-get-value*) echo "dmFsdWU=" ;;
esac
"""


@pytest.fixture
def fake_virsh(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    virsh = bin_dir / "virsh"
    virsh.write_text(FAKE_VIRSH)
    virsh.chmod(0o755)
    log = tmp_path / "virsh.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VIRSH_LOG", str(log))
    return log


def test_the_xargs_loop_runs_the_manual_procedure_once_per_guest_to_its_destination(fake_virsh):
    jobs = [(f"g{i}", f"uuid-{i}", f"qemu+tcp://dst{i % 2}/system") for i in range(5)]
    cmd = xargs_pipeline("qemu+tcp://src/system", jobs, parallel=3)
    assert " xargs -P 3 -n 3 sh " in cmd and str(MANUAL_SCRIPT) in cmd
    subprocess.run(["sh", "-c", cmd], check=True, capture_output=True)
    calls = fake_virsh.read_text().splitlines()
    assert len(calls) == 5 * 5  # dumpxml, define, get-value, set-value, migrate per guest
    for name, uuid, dst in jobs:
        assert f"-q -c qemu+tcp://src/system migrate --live --p2p --persistent --undefinesource {name} {dst}" in calls
        assert f"-q -c {dst} secret-set-value {uuid} --base64 dmFsdWU=" in calls
        assert f"-q -c qemu+tcp://src/system secret-get-value {uuid}" in calls


def test_the_xargs_loop_fails_when_one_guest_fails(fake_virsh, tmp_path):
    failing = tmp_path / "bin" / "virsh"
    failing.write_text(FAKE_VIRSH.replace("case", 'case "$*" in *" migrate "*g1*) exit 1 ;; esac\ncase', 1))
    cmd = xargs_pipeline("src", [("g0", "u0", "d"), ("g1", "u1", "d")], parallel=2)
    assert subprocess.run(["sh", "-c", cmd], capture_output=True).returncode != 0


@pytest.mark.parametrize(("guests", "reps", "quick", "plan"), [
    ([8], None, True, [(8, True, 2)]),
    ([8, 16, 24], None, False, [(8, True, 5), (16, False, 3), (24, True, 3)]),
    ([8, 24], 2, False, [(8, True, 2), (24, True, 2)]),
])
def test_evacuation_plan_runs_the_xargs_loop_at_the_first_and_last_count(guests, reps, quick, plan):
    assert cli.evacuation_plan(guests, reps, quick) == plan


def test_timings_are_read_from_migrate_json_when_present():
    out = json.dumps({"state": "migrated", "timings": {"startup": 0.2, "migration": 2, "verify": None}}).encode()
    assert parts.timings_of(out) == {"startup": 0.2, "migration": 2.0, "verify": None}
    assert parts.timings_of(b'{"state": "migrated"}') is None
    assert parts.timings_of(b"not json") is None


def test_median_timings_per_phase_in_the_order_they_happen():
    reps = [{"total": 3.0, "startup": 0.2, "verify": None}, {"total": 2.0, "startup": 0.4, "verify": None},
            {"total": 4.0, "startup": 0.3, "verify": None, "extra": 1.0}]
    assert list(parts.median_timings(reps) or {}) == ["startup", "verify", "total", "extra"]
    assert parts.median_timings(reps) == {"startup": 0.3, "verify": None, "total": 3.0, "extra": 1.0}
    assert parts.median_timings([]) is None


def _row(n, a, b, rpc=None):
    r = {"n": n, "migcoord_median_s": a, "minimal_median_s": b, "ratio": a / b,
         "migcoord_maxrss_kib_max": 40 * 1024, "minimal_maxrss_kib_max": 30 * 1024}
    if rpc:
        r.update({"migcoord_rpc_calls": rpc[0], "minimal_rpc_calls": rpc[1],
                  "migcoord_rpc_per_domain": rpc[0] / n, "minimal_rpc_per_domain": rpc[1] / n})
    return r


def test_planning_scaling_is_between_the_two_largest_sizes_against_linear():
    rows = [_row(50, 0.3, 0.1, (600, 270)), _row(150, 0.5, 0.2), _row(500, 1.0, 0.8),
            _row(2000, 4.2, 3.0, (22000, 10020))]
    s = parts.planning_summary(rows, reps=3, mem_mib=2)
    assert s["scaling_sizes"] == [500, 2000]
    assert s["scaling_linear"] == 4.0
    assert s["target_scaling_max"] == pytest.approx(4.4)
    assert s["scaling_migcoord"] == pytest.approx(4.2)
    assert s["migcoord_rpc_marginal_per_domain"] == pytest.approx((22000 - 600) / 1950)
    assert s["minimal_rpc_marginal_per_domain"] == pytest.approx((10020 - 270) / 1950)


def test_planning_with_one_size_has_no_scaling_or_marginal_calls():
    s = parts.planning_summary([_row(50, 0.3, 0.1, (600, 270))], reps=1, mem_mib=2)
    assert s["scaling_linear"] == 1.0 and s["migcoord_rpc_marginal_per_domain"] is None
    assert "scaling" not in figures.grid(figures._planning_rows(s))


def _curve(n, a, b=None):
    return {"guests": n, "reps": 3, "migcoord_s": [a], "xargs_s": [b] if b else [], "migcoord_median_s": a,
            "migcoord_per_guest_s": a / n, "xargs_median_s": b, "xargs_per_guest_s": b / n if b else None,
            "ratio": a / b if b else None}


def test_evacuation_headline_is_the_first_count_and_flatness_per_guest():
    s = parts.evacuation_summary([_curve(8, 8.0, 10.0), _curve(16, 17.0), _curve(24, 27.0, 30.0)], 60 * 1024)
    assert s["ratio"] == pytest.approx(0.8) and s["target_ratio_max"] == 0.9
    assert s["flatness"] == pytest.approx((27.0 / 24) / (8.0 / 8))
    assert s["flatness_guests"] == [8, 24]
    assert parts.evacuation_summary([_curve(8, 8.0, 10.0)], None)["flatness"] is None


def test_journal_profile_splits_an_evacuation(tmp_path):
    j = tmp_path / "journal.jsonl"
    ev = [{"event": "evacuation-plan", "ts": 100.5}]
    for i, (start, attempt, done) in enumerate([(100.6, 100.7, 102.7), (100.8, 101.0, 103.0)]):
        ev += [{"event": "migration-start", "uuid": f"u{i}", "ts": start},
               {"event": "migration-attempt", "uuid": f"u{i}", "ts": attempt},
               {"event": "migration-done", "uuid": f"u{i}", "ts": done}]
    ev.append({"event": "evacuation-done", "ts": 103.1})
    j.write_text("".join(json.dumps(e) + "\n" for e in ev))
    p = parts.journal_profile(j, launched=100.0, ended=103.3)
    assert p == pytest.approx({"to_plan_s": 0.5, "first_checks_s": 0.1, "per_guest_prepare_s": 0.15,
                               "per_guest_migrate_verify_s": 2.0, "done_spread_s": 0.3, "exit_s": 0.2,
                               "guests": 2.0})
    assert parts.journal_profile(tmp_path / "missing.jsonl", 0, 1) is None


def test_startup_part_is_skipped_without_its_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "labkit.bench.startup", None)  # import raises ModuleNotFoundError
    assert "missing" in parts.part0_startup(3)["skipped"]


def test_startup_part_reports_the_margin_over_import_libvirt(monkeypatch):
    fake = types.ModuleType("labkit.bench.startup")
    fake.measure_startup = lambda python, reps: {"import_libvirt": 0.10, "version": 0.13, "check": 0.2,
                                                 "python": 0.02, "raw": {}}
    monkeypatch.setitem(sys.modules, "labkit.bench.startup", fake)
    r = parts.part0_startup(5)
    assert r["version_over_import_libvirt_s"] == pytest.approx(0.03)
    assert r["check_over_import_libvirt_s"] == pytest.approx(0.10)
    rows = figures.summary_rows({"startup": r, "machine": {}})
    assert [x[-1] for x in rows[1:]] == ["yes", "NO"]


MACHINE = {"nproc": 2, "memory_gib": 23.5, "cpu": "AMD EPYC", "libvirt": "9.0.0",
           "qemu": "QEMU emulator version 7.2.22 (Debian)", "python": "3.11.7", "kernel": "6.1",
           "loadavg_at_start": [0.1, 0.2, 0.3]}


def _results():
    planning = parts.planning_summary([_row(50, 0.3, 0.1, (600, 270)), _row(500, 1.0, 0.8, (5600, 2520))], 3, 4)
    curve = [_curve(8, 8.0, 10.0), _curve(24, 27.0, 30.0)]
    curve[0]["profile_median"] = {k: 0.1 for k, _ in figures.PROFILE_ROWS}
    evac = parts.evacuation_summary(curve, 60 * 1024)
    single = {"migcoord_median_s": 3.0, "manual_median_s": 2.9, "ratio": 3.0 / 2.9, "target_ratio_max": 1.0,
              "timings_per_rep": [{"startup": 0.2, "total": 3.0}],
              "timings_median_s": {"startup": 0.2, "qemu_elapsed": 0.9, "total": 3.0},
              "qemu_elapsed_median_s": {"migcoord": None, "manual": 0.9}}
    return {"quick": True, "date": "2026-11-27 14:00 UTC", "commit": "abc123", "machine": MACHINE,
            "lab_accel": "kvm", "lab_cpu": "host-model", "single": single, "planning": planning,
            "evacuation": evac, "startup": {"skipped": "missing"}}


def test_every_table_is_printed_with_the_machine():
    res = _results()
    text = figures.tables(res)
    line = figures.machine_line(res)
    assert "AMD EPYC, 2 cores" in line and "KVM" in line and "libvirt 9.0.0, QEMU 7.2.22" in line
    assert text.count(line) == len(figures.sections(res)) == text.count("== ")
    assert "of which QEMU (time_elapsed)" in text and "t(500)/t(50)" in text
    assert "8 guests" in figures.profile_table(res["evacuation"]) and "24 guests" not in figures.profile_table(
        res["evacuation"])


def test_the_machine_line_names_the_lab_hosts_release_when_they_run_in_a_root():
    """MIGCOORD_LAB_STACK=trixie on a Debian 12 machine: the machine's libvirt is only the control side's."""
    res = _results()
    res["lab_hosts"] = {"src": {"stack": "trixie", "libvirt": "11.3.0", "qemu": "10.0.13", "swtpm": "0.7.1"},
                        "dst": {"stack": "trixie", "libvirt": "11.3.0", "qemu": "10.0.13", "swtpm": "0.7.1"}}
    assert figures.machine_line(res).endswith(
        "; lab hosts: src/dst on trixie (libvirt 11.3.0, QEMU 10.0.13, swtpm 0.7.1)")
    assert "lab hosts" not in figures.machine_line(_results())


def test_markdown_keeps_the_hand_written_history_and_the_machine_with_each_table():
    old = "# Benchmarks\n\n## History and what limits each figure\n- planning got faster\n\n## What is measured\nx\n"
    md = figures.markdown(_results(), "benchmarks/planning.png", "noisy", old)
    assert "## History and what limits each figure\n- planning got faster\n" in md
    assert md.count("## History") == 1
    assert md.count("Machine: AMD EPYC") == len(figures.sections(_results()))
    assert "![planning time against domain count](benchmarks/planning.png)" in md
    assert "noisy" in md and "xargs -P 4" in md


def test_the_measured_processes_import_this_checkout(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    path = cli.use_this_checkout()
    root = Path(cli.ROOT)
    assert Path(path).resolve().parent == (root / "coordinator").resolve()
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(root), "/elsewhere"]
