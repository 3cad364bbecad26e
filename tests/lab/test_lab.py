"""scripts/lab itself: idempotent up, recovery after a crash, and a down that leaves nothing.

Runs a separate one-host lab (own directory and loopback address) beside the session lab.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.client import LAB, run_lab

# The solo lab's address follows the session lab's (127.0.0.61 beside the default .11), so
# test runs with their own MIGCOORD_LAB_FIRST_ADDR can run side by side.
SOLO_ADDR = int(os.environ.get("MIGCOORD_LAB_FIRST_ADDR", "11")) + 50


@pytest.fixture
def solo_env(tmp_path):
    env = dict(os.environ, MIGCOORD_LAB_DIR=str(tmp_path / "lab"), MIGCOORD_LAB_FIRST_ADDR=str(SOLO_ADDR))
    yield env
    subprocess.run([sys.executable, str(LAB), "down"], env=env, capture_output=True)


def lab(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LAB), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def ns_members(mnt: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") == mnt:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        out.append(int(pid))
        except OSError:
            pass
    return out


def test_up_is_idempotent_recovers_from_a_crash_and_down_leaves_nothing(solo_env):
    cgroups_before = set(glob.glob("/sys/fs/cgroup/*/machine*"))
    assert lab(solo_env, "up", "--hosts", "solo").returncode == 0
    r = lab(solo_env, "up", "--hosts", "solo")
    assert r.returncode == 0 and "already up" in r.stderr
    assert lab(solo_env, "vm", "guest", "--on", "solo").returncode == 0
    state_file = Path(solo_env["MIGCOORD_LAB_DIR"]) / "state.json"
    host = json.loads(state_file.read_text())["hosts"]["solo"]
    assert host["addr"] == f"127.0.0.{SOLO_ADDR}"
    members = ns_members(host["mntns"])
    assert len(members) >= 3  # libvirtd, QEMU, swtpm

    os.kill(host["pid"], signal.SIGKILL)  # a crashed daemon leaves QEMU and swtpm behind
    time.sleep(0.5)
    r = lab(solo_env, "up", "--hosts", "solo")
    assert r.returncode == 0, r.stderr
    assert not [p for p in members if p in ns_members(host["mntns"])]  # orphans ended by PID
    status = lab(solo_env, "status")
    assert "up" in status.stdout

    new = json.loads(state_file.read_text())["hosts"]["solo"]
    assert lab(solo_env, "down").returncode == 0
    assert ns_members(new["mntns"]) == [] and ns_members(host["mntns"]) == []
    assert not os.path.exists(solo_env["MIGCOORD_LAB_DIR"])
    with open("/proc/self/mountinfo") as f:
        assert solo_env["MIGCOORD_LAB_DIR"] not in f.read()
    assert set(glob.glob("/sys/fs/cgroup/*/machine*")) <= cgroups_before


def test_cpu_probe_falls_back_when_a_candidate_cannot_start(lab):
    """A first candidate that QEMU/libvirt refuse for real (an unknown CPU model) is recorded as
    failed with libvirt's error, and the probe goes on to the candidate the lab recorded at `up`."""
    bad = "<cpu mode='custom' match='exact'><model fallback='forbid'>no-such-cpu-model</model></cpu>"
    out = json.loads(run_lab("cpu", "--first", bad))
    tried = out["probe"]["tried"]
    assert tried[0]["xml"] == bad and "no-such-cpu-model" in tried[0]["error"]
    assert out["probe"]["xml"] == out["recorded"]["xml"] == lab.env["cpu"]["xml"]
    assert tried[-1]["error"] is None and all(t["error"] for t in tried[:-1])
    # Every lab guest uses the recorded choice (the one place that decides the CPU).
    assert lab.env["cpu"]["name"] in {"host-model", "hypervisor-default"} or \
        lab.env["cpu"]["name"].startswith("host-model-without-")
