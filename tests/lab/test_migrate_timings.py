"""Where the time of a real migration goes (issue #15): ``migrate --json`` carries every phase,
they add up to the total, libvirt's own elapsed time fits inside the migration phase, and
``--timings`` prints the breakdown. No figure is compared with a fixed number (the lab's machine
is shared and its speed unknown, house rule 17)."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

PHASES = ("startup", "connect", "plan", "checks", "provision", "migration", "verify")
KEYS = {*PHASES, "qemu_elapsed", "other", "total"}  # the names scripts/bench reads


def test_migrate_reports_where_its_time_went(clean, name, migcoord):
    lab = clean
    lab.vm(name, on="src", secret="readable")

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json",
                 "--timings")

    assert r.returncode == 0, r.stderr_text
    out = json.loads(r.stdout_text)
    assert out["state"] == "migrated"
    t = out["timings"]
    assert set(t) == KEYS
    for key in (*PHASES, "other", "total"):
        assert isinstance(t[key], float | int) and t[key] >= 0, (key, t)
    assert t["startup"] > 0 and t["migration"] > 0
    # each figure is rounded to the millisecond: 8 of them add up to the total within 8 × 0.5 ms
    assert sum(t[p] for p in PHASES) + t["other"] == pytest.approx(t["total"], abs=0.0045)
    assert isinstance(t["qemu_elapsed"], float | int) and 0 < t["qemu_elapsed"] <= t["migration"], t

    lines = r.stderr_text.splitlines()
    start = lines.index("timings:")
    shown = {ln.split()[0]: ln.split()[1] for ln in lines[start + 1:start + 1 + len(KEYS)]}
    assert set(shown) == KEYS
    assert shown["total"] == f"{t['total']:.3f}s" and shown["migration"] == f"{t['migration']:.3f}s"
