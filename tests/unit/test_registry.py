"""checks.registry with fake checks: skip by id/tag, waive, raising check → error, concurrency."""
from __future__ import annotations

import dataclasses
import threading
import time
import pytest
from check_fakes import context, reachable

from checks.registry import Check, CheckSpec, Finding, Registry, Report, failed, passed, run_checks


def make_registry(*extra: Check) -> Registry:
    reg = Registry()

    @reg.check("A-PASS", CheckSpec(scope="pair", tags=("alpha",), hint="h-a", needs=()))
    def a(ctx):
        """Always passes."""
        return passed("fine", "host")

    @reg.check("B-FAIL", CheckSpec(tags=("beta",), hint="h-b", needs=()))
    def b(ctx, t):
        return failed(f"{t.name} bad")

    @reg.check("C-WARN", CheckSpec(severity="warning", tags=("beta", "gamma"), needs=()))
    def c(ctx, t):
        return [failed("meh")]

    @reg.check("D-RAISES", CheckSpec(tags=("delta",), needs=()))
    def d(ctx, t):
        raise RuntimeError("libvirt went away")

    @reg.check("E-NEEDS-DST", CheckSpec(scope="pair", needs=("dst",)))
    def e(ctx):
        return passed("ok")

    for x in extra:
        reg.register(x)
    return reg


CTX = context(["vm1", "vm2"])  # both hosts unreachable


def statuses(report: Report) -> dict[tuple[str, str], str]:
    return {(f.check_id, f.subject): f.status for f in report.findings}


def test_every_check_runs_per_scope_and_raising_check_is_an_error_finding():
    r = run_checks(CTX, registry=make_registry())
    assert statuses(r) == {
        ("A-PASS", "host"): "pass",
        ("B-FAIL", "vm1"): "fail", ("B-FAIL", "vm2"): "fail",
        ("C-WARN", "vm1"): "fail", ("C-WARN", "vm2"): "fail",
        ("D-RAISES", "vm1"): "error", ("D-RAISES", "vm2"): "error",
        ("E-NEEDS-DST", "-"): "skipped",
    }
    err = r.by_id("D-RAISES")[0]
    assert "RuntimeError: libvirt went away" in err.message
    assert "dst host unreachable" in r.by_id("E-NEEDS-DST")[0].message
    # A check that could not run cannot vouch for the migration: it blocks like a failure.
    assert {f.check_id for f in r.blocking} == {"B-FAIL", "D-RAISES"}
    assert not r.ok


@pytest.mark.parametrize("skip, skipped_ids", [
    (("B-FAIL",), {"B-FAIL"}),
    (("beta",), {"B-FAIL", "C-WARN"}),
    (("gamma", "alpha"), {"A-PASS", "C-WARN"}),
    (("nothing",), set()),
])
def test_skip_by_id_or_tag(skip, skipped_ids):
    r = run_checks(CTX, skip=skip, registry=make_registry())
    got = {f.check_id for f in r.findings if f.status == "skipped" and f.message == "skipped on request"}
    assert got == skipped_ids
    for cid in skipped_ids:
        assert len(r.by_id(cid)) == 1 and r.by_id(cid)[0].subject == "-"


def test_waived_blocking_id_is_reported_waived_and_no_longer_blocks():
    r = run_checks(CTX, waive=("B-FAIL", "D-RAISES"), registry=make_registry())
    assert [f.status for f in r.by_id("B-FAIL")] == ["waived", "waived"]
    assert r.ok and r.blocking == ()
    d = r.as_dict()
    assert d["ok"] is True and d["waive"] == ["B-FAIL", "D-RAISES"] and d["blocking"] == []
    assert d["counts"]["waived"] == 4


def test_report_as_dict_is_stable_and_sorted_by_registration_then_subject():
    r1 = run_checks(CTX, registry=make_registry())
    r2 = run_checks(CTX, registry=make_registry())
    assert r1.as_dict() == r2.as_dict()
    ids = [f["check_id"] for f in r1.as_dict()["findings"]]
    assert ids == ["A-PASS", "B-FAIL", "B-FAIL", "C-WARN", "C-WARN", "D-RAISES", "D-RAISES", "E-NEEDS-DST"]
    assert r1.as_dict()["findings"][1] == {"check_id": "B-FAIL", "severity": "error", "status": "fail",
                                           "subject": "vm1", "message": "vm1 bad", "hint": "h-b",
                                           "transport": "libvirt"}


def test_checks_run_concurrently():
    barrier = threading.Barrier(4, timeout=5)
    reg = Registry()

    @reg.check("SLOW", CheckSpec(needs=()))
    def slow(ctx, t):
        barrier.wait()  # only returns when 4 run at the same time
        time.sleep(0.01)
        return passed("ok")

    ctx = context([f"vm{i}" for i in range(4)])
    r = run_checks(ctx, registry=reg, max_workers=4)
    assert [f.status for f in r.findings] == ["pass"] * 4


def test_registry_rejects_duplicates_and_bad_severity():
    reg = make_registry()
    with pytest.raises(ValueError):
        reg.check("A-PASS")(lambda ctx: None)
    with pytest.raises(ValueError):
        Check(id="X", fn=lambda c: None, severity="fatal", transport="libvirt", scope="pair", tags=(), hint="",
              summary="")


def test_finding_is_frozen_and_blocking_only_for_failing_errors():
    f = Finding("X", "error", "fail", "vm", "m")
    assert f.blocking
    assert Finding("X", "error", "error", "vm", "m").blocking
    assert not Finding("X", "warning", "error", "vm", "m").blocking
    assert not Finding("X", "warning", "fail", "vm", "m").blocking
    assert not Finding("X", "error", "waived", "vm", "m").blocking
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.status = "pass"  # type: ignore[misc]


def test_default_registry_ids_are_documented():
    import pathlib

    import checks
    readme = (pathlib.Path(checks.__file__).parent / "README.md").read_text()
    for cid, c in checks.REGISTRY.checks.items():
        assert f"`{cid}`" in readme, cid
        assert c.hint and c.transport in ("libvirt", "ssh")
        assert (c.transport == "ssh") == ("ssh" in c.tags), cid


def test_unknown_never_blocks_and_the_verdict_line_names_it():
    from coordinator.cli.cmd_check import exit_code
    from coordinator.cli.render import check_report as render_table
    from checks.registry import unknown
    reg = Registry()
    reg.check("A-UNKNOWN")(lambda ctx, t: unknown("whether /x is on a shared filesystem is unknown; use --ssh"))
    reg.check("B-LOWERED")(lambda ctx, t: failed("offline: only a warning", severity="warning"))
    reg.check("C-OK")(lambda ctx, t: passed("fine"))
    rep = run_checks(context(["vm"], **reachable()), registry=reg)
    assert rep.ok and [f.check_id for f in rep.unknowns] == ["A-UNKNOWN"]
    assert [(f.check_id, f.severity, f.status) for f in rep.findings] == [
        ("A-UNKNOWN", "error", "unknown"), ("B-LOWERED", "warning", "fail"), ("C-OK", "error", "pass")]
    assert rep.as_dict()["unknown"] == ["A-UNKNOWN"] and rep.as_dict()["counts"]["unknown"] == 1
    # An error check's unknown decides success: not a go (exit 6) unless accepted.
    assert [f.check_id for f in rep.decisive] == ["A-UNKNOWN"] and rep.verdict == "unknown"
    assert rep.as_dict()["decisive_unknown"] == ["A-UNKNOWN"] and rep.as_dict()["verdict"] == "unknown"
    assert render_table(rep).splitlines()[-1] == (
        "UNKNOWN: success depends on what the checks could not learn (see the hints, or --accept-unknown): "
        "A-UNKNOWN (vm): whether /x is on a shared filesystem is unknown; use --ssh")
    assert render_table(rep, accept_unknown=True).splitlines()[-1] == (
        "GO with unknowns: A-UNKNOWN (vm): whether /x is on a shared filesystem is unknown; use --ssh")
    assert (exit_code(rep), exit_code(rep, accept_unknown=True)) == (6, 0)

    # A warning-severity check's unknown only informs: a go, named in the last line.
    reg_w = Registry()
    reg_w.check("W-UNKNOWN", CheckSpec(severity="warning"))(lambda ctx, t: unknown("whether it is tidy is unknown"))
    rep_w = run_checks(context(["vm"], **reachable()), registry=reg_w)
    assert rep_w.ok and not rep_w.decisive and rep_w.verdict == "go" and exit_code(rep_w) == 0
    assert render_table(rep_w).splitlines()[-1] == "GO with unknowns: W-UNKNOWN (vm): whether it is tidy is unknown"

    reg.check("D-BLOCKS")(lambda ctx, t: failed("refused"))
    rep = run_checks(context(["vm"], **reachable()), registry=reg)
    assert not rep.ok and render_table(rep).splitlines()[-1] == "BLOCKED by D-BLOCKS"
    assert rep.verdict == "block" and exit_code(rep) == exit_code(rep, accept_unknown=True) == 1


# The one rule for which unknowns decide success (checks.registry.decisive), as a table.
@pytest.mark.parametrize("status, severity, is_decisive", [
    ("unknown", "error", True),      # the check might have blocked had it learnt the fact
    ("unknown", "warning", False),   # it would only have informed
    ("fail", "error", False),        # blocks instead (registry.blocks)
    ("error", "error", False),
    ("pass", "error", False),
    ("skipped", "error", False),     # skipped on request: the operator chose not to know
    ("waived", "error", False),
    ("fail", "warning", False),
])
def test_decisive_rule(status, severity, is_decisive):
    from checks.registry import decisive
    assert decisive(status, severity) is is_decisive
    assert Finding("X", severity, status, "vm", "m").decisive is is_decisive


def test_only_blocking_reports_keep_the_decisive_unknowns():
    from checks.registry import unknown
    reg = Registry()
    reg.check("A-UNKNOWN")(lambda ctx, t: unknown("not learnt"))
    reg.check("W-UNKNOWN", CheckSpec(severity="warning"))(lambda ctx, t: unknown("not learnt either"))
    reg.check("C-OK")(lambda ctx, t: passed("fine"))
    rep = run_checks(context(["vm"], **reachable()), registry=reg,
                     only_blocking=True)
    assert [f.check_id for f in rep.findings] == ["A-UNKNOWN"] and rep.verdict == "unknown"


def test_a_check_with_an_override_option_runs_whatever_is_skipped_and_is_refused_by_name():
    from checks.preflight import validate_selection
    from checks.registry import REGISTRY, unskippable
    from coordinator.core.errors import BadInput

    guarded = Check(id="G-GUARD", fn=lambda ctx: failed("unprotected", "-"), severity="error", transport="libvirt",
                    scope="pair", tags=("beta",), hint="", summary="", needs=(), override="--allow-it")
    r = run_checks(CTX, skip=("beta", "G-GUARD"), registry=make_registry(guarded))
    assert [f.status for f in r.by_id("G-GUARD")] == ["fail"]          # a tag or id skip does not reach it
    assert [f.status for f in r.by_id("B-FAIL")] == ["skipped"]
    assert [c.id for c in unskippable(["B-FAIL", "G-GUARD"], make_registry(guarded))] == ["G-GUARD"]
    # The real security rule: the only way past it is its flag (the flows enforce it again anyway).
    assert REGISTRY.checks["SECRET-PLAINTEXT-TRANSPORT"].override == "--allow-plaintext-secrets"
    for skip, waive in ((("SECRET-PLAINTEXT-TRANSPORT",), ()), ((), ("SECRET-PLAINTEXT-TRANSPORT",))):
        with pytest.raises(BadInput) as e:
            validate_selection(skip, waive)
        assert "SECRET-PLAINTEXT-TRANSPORT cannot be skipped or waived" in str(e.value)
        assert "--allow-plaintext-secrets" in e.value.hint


@pytest.mark.parametrize("waive", [(), ("B-FAIL",), ("B-FAIL", "D-RAISES")])
def test_only_blocking_keeps_exactly_the_blocking_findings(waive):
    full = run_checks(CTX, waive=waive, registry=make_registry())
    only = run_checks(CTX, waive=waive, registry=make_registry(), only_blocking=True)
    assert only.findings == full.blocking and only.blocking == full.blocking


def test_domains_are_dealt_out_to_at_most_max_workers_tasks():
    threads: set[str] = set()
    reg = Registry()

    @reg.check("WHERE", CheckSpec(needs=()))
    def where(ctx, t):
        threads.add(threading.current_thread().name)
        return passed("ok")

    ctx = context([f"vm{i}" for i in range(50)])
    r = run_checks(ctx, registry=reg, max_workers=3)
    assert len(r.findings) == 50 and 1 <= len(threads) <= 3
