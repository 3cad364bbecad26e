"""coordinator.core.evacuation: placement with capacity accounting, the exit code, the policy, the report."""
from __future__ import annotations

import pytest

from coordinator.core.errors import BadInput
from coordinator.core.evacuation import (Candidate, EvacuationPlan, EvacuationPolicy, EvacuationReport, Outcome,
                                         PlannedDomain, exit_code_for, place)

MiB = 2**20
A, B = "qemu+ssh://a/system", "qemu+ssh://b/system"


def cand(name: str, mib: int, live: bool = True) -> Candidate:
    return Candidate(name, mib * MiB, live)


@pytest.mark.parametrize("domains, capacity, blockers, where, unplaceable", [
    pytest.param([cand("x", 100)], {A: 1000 * MiB, B: 2000 * MiB}, {}, {"x": B}, set(), id="most-room-wins"),
    pytest.param([cand("x", 100), cand("y", 100)], {A: 1000 * MiB, B: 1000 * MiB}, {}, {"x": A, "y": B}, set(),
                 id="spread-ties-in-given-order"),
    pytest.param([cand("big", 900), cand("s1", 300), cand("s2", 300)], {A: 1000 * MiB, B: 1000 * MiB}, {},
                 {"big": A, "s1": B, "s2": B}, set(), id="capacity-accounted-biggest-first"),
    pytest.param([cand("big", 1500), cand("s", 10)], {A: 1000 * MiB, B: 2000 * MiB}, {}, {"big": B, "s": A}, set(),
                 id="too-big-for-one-destination"),
    pytest.param([cand("x", 100)], {A: 1000 * MiB, B: 1000 * MiB}, {("x", A): ("CPU-INCOMPATIBLE",)}, {"x": B}, set(),
                 id="blocked-on-one"),
    pytest.param([cand("x", 100)], {A: 1000 * MiB, B: 1000 * MiB},
                 {("x", A): ("SECRET-NO-VALUE-SOURCE",), ("x", B): ("SECRET-NO-VALUE-SOURCE",)}, {}, {"x"},
                 id="blocked-everywhere"),
    pytest.param([cand("x", 5000)], {A: 1000 * MiB, B: 1000 * MiB}, {}, {}, {"x"}, id="fits-nowhere"),
    pytest.param([], {A: 1000 * MiB}, {}, {}, set(), id="nothing-to-do"),
])
def test_placement_biggest_first_into_the_most_room_never_onto_a_blocked_destination(domains, capacity, blockers,
                                                                                     where, unplaceable):
    p = place(domains, capacity, blockers)
    assert p.destination == where
    assert set(p.unplaceable) == unplaceable


def test_unplaceable_reasons_name_the_cause():
    p = place([cand("x", 5000), cand("y", 1)], {A: 1000 * MiB, B: 1000 * MiB},
              {("y", A): ("NETWORK-UNAVAILABLE",), ("y", B): ("CPU-INCOMPATIBLE", "NETWORK-UNAVAILABLE")})
    assert p.unplaceable["x"].startswith("no destination has room for 5000 MiB")
    assert p.unplaceable["y"] == (f"blocked on every destination: {A}: NETWORK-UNAVAILABLE; "
                                  f"{B}: CPU-INCOMPATIBLE, NETWORK-UNAVAILABLE")


@pytest.mark.parametrize("states, code", [
    (["migrated", "already-on-destination"], 0),
    ([], 0),
    (["migrated", "unplaceable"], 4),
    (["migrated", "failed"], 4),
    (["unplaceable", "blocked"], 1),
    (["failed", "unplaceable"], 3),
    (["not-started"], 1),
    (["migrated", "migrated-unverified"], 5),         # all moved, one with a warning
    (["migrated-unverified", "failed"], 4),
])
def test_evacuation_exit_code_says_all_moved_partial_blocked_failed_or_unverified(states, code):
    assert exit_code_for([Outcome(f"d{i}", s) for i, s in enumerate(states)]) == code


@pytest.mark.parametrize("kw", [{"parallel": 0}, {"per_destination": 0}, {"max_duration_s": 0}])
def test_policy_rejects_nonsense(kw):
    with pytest.raises(BadInput):
        EvacuationPolicy(**kw)


@pytest.mark.parametrize("state, moved", [
    ("migrated", True), ("already-on-destination", True), ("failed", False), ("blocked", False),
    ("unplaceable", False), ("not-started", False), ("migrated-unverified", True), ("interrupted", False),
])
def test_only_outcomes_on_a_destination_count_as_moved(state, moved):
    assert Outcome("d", state).moved is moved


def test_plan_and_report():
    placed = PlannedDomain("x", "u1", True, 512 * MiB, A)
    stuck = PlannedDomain("y", "u2", False, 100 * MiB, None, reason="fits nowhere")
    plan = EvacuationPlan(source="qemu:///system", destinations=(A, B), domains=(placed, stuck),
                          excluded=("z",), blockers={"y": {A: ("CPU-INCOMPATIBLE",)}})
    assert plan.placed == (placed,) and plan.unplaceable == (stuck,)
    d = plan.as_dict()
    assert [x["mode"] for x in d["domains"]] == ["live", "offline"]
    assert d["domains"][0]["memory_mib"] == 512 and d["blockers"] == {"y": {A: ["CPU-INCOMPATIBLE"]}}
    report = EvacuationReport(plan, (Outcome("x", "migrated", A, duration_s=1.23456), Outcome("y", "unplaceable")),
                              2.0)
    assert report.exit_code == 4
    r = report.as_dict()
    assert (r["exit_code"], r["outcomes"][0]["duration_s"], r["plan"]) == (4, 1.235, d)

