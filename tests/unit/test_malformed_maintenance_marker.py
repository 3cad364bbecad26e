"""A maintenance marker is a secret's description anyone who may define secrets can write: a
malformed one still means "draining" but never crashes a command (``evacuate`` reads it before
planning) and says in one line what is wrong and how to clear it."""
from __future__ import annotations

import json

import pytest

from coordinator.core.maintenance import CLEAR_HINT, TEXT_MAX, format_marker, parse_marker
from coordinator.flows.maintenance import mark


@pytest.mark.parametrize("since", ["1e17", "NaN", "Infinity", "-1", "true", '"2026-01-01"', "null", "[1]"])
def test_a_marker_whose_since_is_not_a_time_is_malformed_not_a_traceback(since):
    m = parse_marker('{"migcoord-maintenance": 1, "since": ' + since + ', "control_host": "ctl"}')
    assert m is not None and "since=" in m.problem
    line = m.describe()
    assert line.startswith("draining (a malformed maintenance mark: since=") and CLEAR_HINT in line
    assert "\n" not in line
    json.dumps(m.as_dict(), allow_nan=False)  # the journal and --json can carry it


@pytest.mark.parametrize("field, value", [("control_host", {"x": 1}), ("run", 7), ("reason", ["a"])])
def test_a_marker_whose_text_fields_are_not_text_is_malformed(field, value):
    m = parse_marker(json.dumps({"since": 5, field: value}))
    assert m is not None and f"{field}=" in m.problem and "is not text" in m.problem


def test_a_marker_text_is_made_printable_and_short():
    m = parse_marker(json.dumps({"since": 5, "control_host": "ctl\nFORGED: all clear", "reason": "r" * 10_000}))
    assert m is not None and not m.problem
    assert "\n" not in m.describe() and len(m.reason) <= TEXT_MAX + 3


def test_a_deeply_nested_marker_is_a_hand_made_mark_not_a_recursion_error():
    m = parse_marker("[" * 100_000 + "]" * 100_000)
    assert m is not None and len(m.reason) <= TEXT_MAX + 3


class FakeHost:
    def __init__(self, description: str | None) -> None:
        self.description, self.writes = description, 0

    def maintenance_marker(self) -> str | None:
        return self.description

    def set_maintenance_marker(self, description: str | None) -> None:
        self.description, self.writes = description, self.writes + 1


def test_evacuate_marking_a_host_with_a_malformed_mark_keeps_it_and_can_journal_it():
    host = FakeHost('{"since": 1e17, "control_host": "ctl"}')
    m = mark(host, reason="evacuation", run_id="r1")  # what evacuate does before planning
    assert host.writes == 0 and m.problem
    assert json.loads(json.dumps(m.as_dict()))["problem"].startswith("since=1e+17")


def test_a_well_formed_marker_is_not_malformed():
    m = parse_marker(format_marker(mark(FakeHost(None), reason="firmware", now=1_800_000_000.0)))
    assert m is not None and not m.problem and "2027-01-15T08:00:00Z" in m.describe()
