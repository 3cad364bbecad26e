"""scripts/labkit/bench/startup.py runs without a lab and returns every figure (no timing asserted)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from labkit.bench.startup import PROBES, measure_startup

ROOT = Path(__file__).resolve().parents[2]


def test_measure_startup_returns_a_median_and_the_raw_runs_of_each_probe(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    got = measure_startup(sys.executable, 2)
    assert set(got) == {"python", "import_libvirt", "version", "check", "raw"} == set(PROBES) | {"raw"}
    for name in PROBES:
        assert len(got["raw"][name]) == 2
        assert got[name] > 0
