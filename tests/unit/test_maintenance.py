"""core.maintenance: the draining-host marker's description (tables)."""
from __future__ import annotations

import pytest

from coordinator.core.maintenance import Maintenance, format_marker, parse_marker

M = Maintenance(since=1800000000.0, control_host="ctl", run_id="r1", reason="firmware")


def test_a_written_marker_reads_back_the_same():
    assert parse_marker(format_marker(M)) == M


@pytest.mark.parametrize("description, expected", [
    (None, None),                                                            # not marked
    ("", Maintenance(since=0.0, control_host="?", reason="")),               # a marker nobody described
    ("put there by hand", Maintenance(since=0.0, control_host="?", reason="put there by hand")),
    ('{"since": "x"}', Maintenance(since=0.0, control_host="?",
                                   problem="since='x' is not a time in epoch seconds")),
    ('{"since": 5, "control_host": "h"}', Maintenance(since=5.0, control_host="h")),
    ("[1, 2]", Maintenance(since=0.0, control_host="?", reason="[1, 2]")),
])
def test_any_marker_means_draining(description, expected):
    assert parse_marker(description) == expected


def test_describe_names_who_and_why():
    text = M.describe()
    assert "draining since 2027-01-15T08:00:00Z" in text and "ctl" in text and "r1" in text and "firmware" in text
