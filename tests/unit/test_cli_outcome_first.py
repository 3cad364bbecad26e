"""``migcoord evacuate``: the outcome is printed first; failing to write the report or the journal
afterwards (directory gone, disk full) is a warning, and the exit code still says what happened to
the VMs (issue #12). The evacuation itself is MOCKED here (``flows.evacuate.evacuate`` returns a
made-up report after removing the report's directory, a fault the lab cannot produce on demand);
tests/lab/test_security.py runs the real thing with ``--journal /dev/full``."""
from __future__ import annotations

import shutil

import pytest

from coordinator.flows import evacuate as flows_evacuate
from coordinator.cli.main import main
from coordinator.core.evacuation import EvacuationPlan, EvacuationReport, Outcome

SRC, DST = "qemu+tls://hv1.invalid/system", "qemu+tls://hv2.invalid/system"


@pytest.mark.parametrize("states, code", [(("migrated", "migrated"), 0), (("migrated", "failed"), 4)])
@pytest.mark.parametrize("journal", ["ok", "/dev/full"])
def test_report_or_journal_failure_after_the_work_is_a_warning(tmp_path, monkeypatch, capsys, states, code,
                                                              journal):
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    journal_path = "/dev/full" if journal == "/dev/full" else str(tmp_path / "j")

    def fake_evacuate(src, dsts, ev, options, runtime):
        shutil.rmtree(out_dir)  # the directory vanishes while the migrations run
        runtime.journal.record("evacuation-done")  # /dev/full: disk full
        return EvacuationReport(plan=EvacuationPlan(SRC, (DST,), ()), duration_s=1.0,
                                outcomes=tuple(Outcome(f"vm{i}", s, DST) for i, s in enumerate(states)))

    monkeypatch.setattr(flows_evacuate, "evacuate", fake_evacuate)  # cmd_evacuate imports it in run()
    rc = main(["evacuate", "--from", SRC, "--to", DST, "--report", str(out_dir / "r.json"),
               "--journal", journal_path, "--lock-dir", str(tmp_path / "locks")])

    out, err = capsys.readouterr()
    assert rc == code
    assert f"{states.count('migrated')} of 2 moved" in out  # the summary is there
    assert "Traceback" not in err
    assert f"migcoord: warning: the report was not written to {out_dir / 'r.json'}" in err
    assert ("the journal /dev/full is incomplete" in err) is (journal == "/dev/full")
