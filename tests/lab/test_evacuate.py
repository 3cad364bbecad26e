"""Host evacuation on the three-host lab (src → dst, dst2), through the real CLI."""
from __future__ import annotations

import json
import signal
import time

import libvirt
import pytest

from labkit.client import ACCEPT_SHARED_IMAGE, assert_no_value


def evac_args(lab, *extra: str) -> list[str]:
    return ["evacuate", "--from", lab.uri("src"), "--to", lab.uri("dst"), "--to", lab.uri("dst2"), *extra]


def test_evacuation_places_by_checks_and_capacity_and_reports_partial(clean, name, migcoord, tmp_path):
    lab = clean
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    vms = {
        "readable": lab.vm(f"{name}-r1", on="src"),
        "private": lab.vm(f"{name}-p1", on="src", secret="private", keyfile=keys / "tmp"),
        "luks": lab.vm(f"{name}-l1", on="src", luks_disk="shared"),
        "nokey": lab.vm(f"{name}-u1", on="src", secret="private"),
        "big": lab.vm(f"{name}-big", on="src", memory=1024),
        "readable2": lab.vm(f"{name}-r2", on="src"),
    }
    (keys / "tmp").rename(keys / vms["private"]["secret"])  # --secret-dir: files named by UUID
    common = ["--secret-dir", str(keys), "--unsafe", "--parallel", "2",
              "--max-memory", f"{lab.uri('dst')}=1400", "--max-memory", f"{lab.uri('dst2')}=600"]
    before = lab.snapshot()

    # Without SSH, whether the LUKS image exists on a destination is unknown, and it decides success
    # (STORAGE-ON-DEST): the domain is placed nowhere, named as unknown; the others are still planned.
    dry = migcoord(*evac_args(lab, *common, "--dry-run", "--json"), timeout=300)
    assert dry.returncode == 1, dry.stderr_text
    undecided = json.loads(dry.stdout)
    l1 = {d["domain"]: d for d in undecided["domains"]}[f"{name}-l1"]
    assert l1["destination"] is None and "STORAGE-ON-DEST (unknown)" in l1["reason"], l1
    assert set(undecided["undecided"][f"{name}-l1"]) == {lab.uri("dst"), lab.uri("dst2")}
    assert {d["domain"] for d in undecided["domains"] if d["destination"]} >= {f"{name}-r1", f"{name}-big"}
    assert lab.snapshot() == before
    common.append("--accept-unknown")  # the shared image is there: go on with that unknown from here on

    dry = migcoord(*evac_args(lab, *common, "--dry-run", "--json"), timeout=300)

    assert dry.returncode == 1, dry.stderr_text  # one domain cannot be placed
    assert lab.snapshot() == before  # the dry run changed nothing
    plan = {d["domain"]: d for d in json.loads(dry.stdout)["domains"]}
    where = {n: d["destination"] for n, d in plan.items()}
    # Biggest first into the most room left: big → dst (dst2 caps at 600 MiB), then the 128 MiB
    # guests alternate as the room left changes; the key-less private one fits nowhere.
    assert where == {f"{name}-big": lab.uri("dst"), f"{name}-l1": lab.uri("dst2"),
                     f"{name}-p1": lab.uri("dst2"), f"{name}-r1": lab.uri("dst"),
                     f"{name}-r2": lab.uri("dst2"), f"{name}-u1": None}
    assert "SECRET-NO-VALUE-SOURCE" in plan[f"{name}-u1"]["reason"]
    assert [s["action"] for s in plan[f"{name}-l1"]["secrets"]] == ["provision", "provision"]

    r = migcoord(*evac_args(lab, *common, "--json", "--report", str(tmp_path / "report.json")), timeout=300)

    assert r.returncode == 4, r.stderr_text  # partial
    report = json.loads(r.stdout)
    assert report == json.loads((tmp_path / "report.json").read_text())
    states = {o["domain"]: (o["state"], o["destination"]) for o in report["outcomes"]}
    assert states[f"{name}-u1"][0] == "unplaceable"
    for vm, dest in where.items():
        host = {lab.uri("dst"): "dst", lab.uri("dst2"): "dst2", None: "src"}[dest]
        assert lab.where(vm) == {host: "running"}, vm
        if dest:
            assert states[vm] == ("migrated", dest)
    for vm in vms.values():
        assert_no_value(lab.stored_value("src", vm["secret"]), r.stdout, r.stderr, migcoord.journal.read_bytes(),
                        (tmp_path / "report.json").read_bytes(), dry.stdout)
    assert lab.digest("dst2", vms["luks"]["disk_secret"]) == lab.digest("src", vms["luks"]["disk_secret"])


def test_overlapping_evacuation_is_refused(clean, name, migcoord):
    lab = clean
    lab.vm(f"{name}-slow", on="src", dirty_memory=True)
    first = migcoord.background(*evac_args(lab, "--bandwidth", "1", *ACCEPT_SHARED_IMAGE, "--timeout", "6"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not migcoord.bg_journal.exists():
        time.sleep(0.1)  # the journal's first line is written under the host lock
    second = migcoord(*evac_args(lab), timeout=300)  # the same lock directory as the first run
    assert second.returncode == 75  # EX_TEMPFAIL: another run holds the lock
    assert "another migcoord evacuation of " + lab.uri("src") + " is running" in second.stderr_text
    first.communicate(timeout=120)
    assert lab.where(f"{name}-slow") == {"src": "running"}  # the first one timed out: still on src


def test_evacuation_killed_half_way_is_finished_by_a_rerun(clean, name, migcoord):
    lab = clean
    names = [f"{name}-{i}" for i in range(3)]
    for n in names:
        lab.vm(n, on="src")
    proc = migcoord.background(*evac_args(lab, "--parallel", "1"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("src" not in lab.where(n) for n in names):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert any("src" in lab.where(n) for n in names), "the run finished before it was killed"

    r = migcoord(*evac_args(lab), timeout=300)

    assert r.returncode == 0, r.stderr_text + r.stdout_text
    for n in names:
        where = lab.where(n)
        assert len(where) == 1 and set(where.values()) == {"running"} and "src" not in where, (n, where)


def test_max_duration_starts_nothing_new_after_the_deadline(clean, name, migcoord):
    lab = clean
    names = [f"{name}-{i}" for i in range(3)]
    for n in names:
        lab.vm(n, on="src")
    r = migcoord(*evac_args(lab, "--parallel", "1", "--max-duration", "0.5", "--json"), timeout=300)
    assert r.returncode == 4, r.stderr_text
    states = {o["domain"]: o["state"] for o in json.loads(r.stdout)["outcomes"]}
    assert sorted(states.values()) == ["migrated", "not-started", "not-started"]
    for n, state in states.items():
        expected = [{"src": "running"}] if state == "not-started" else [{"dst": "running"}, {"dst2": "running"}]
        assert lab.where(n) in expected, (n, state)


def test_evacuation_killed_during_secret_provisioning_is_finished_by_a_rerun(clean, name, migcoord):
    """SIGKILL while the first domain's secrets are being provisioned (stopped right after the
    journal says the first one was defined, and proven still before any migration attempt): the
    re-run takes over the dead run's lease (owner gone), finds the half-provisioned secrets, and
    finishes."""
    lab = clean
    two = lab.vm(f"{name}-luks", on="src", luks_disk="shared", memory=192)  # biggest: goes first
    lab.vm(f"{name}-plain", on="src")
    journal = migcoord.bg_journal
    proc = migcoord.background(*evac_args(lab, "--parallel", "1", "--unsafe", "--accept-unknown"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and b'"event": "secret-defined"' in journal.read_bytes():
            proc.send_signal(signal.SIGSTOP)  # freeze it where it is, then look
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    events = [e["event"] for e in migcoord.events(journal)]
    assert "secret-defined" in events, events
    assert "migration-attempt" not in events, f"stopped too late: {events}"
    assert lab.where(two["name"]) == {"src": "running"}
    on_dst = {h for h in ("dst", "dst2") if lab.secret_uuids(h) & {two["secret"], two["disk_secret"]}}
    assert len(on_dst) == 1  # the dead run left secrets on the destination it had chosen

    r = migcoord(*evac_args(lab, "--unsafe", "--accept-unknown", "--json"), timeout=300)

    assert r.returncode == 0, r.stderr_text + r.stdout_text
    for n in (f"{name}-luks", f"{name}-plain"):
        where = lab.where(n)
        assert len(where) == 1 and set(where.values()) == {"running"} and "src" not in where, (n, where)
    (host,) = lab.where(f"{name}-luks")
    for sid in (two["secret"], two["disk_secret"]):
        assert lab.digest(host, sid) == lab.digest("src", sid)


def test_evacuation_killed_mid_migration_rerun_adopts_its_own_job(clean, name, migcoord):
    """Deterministic version of the kill-half-way case: a busy guest keeps the killed run's
    peer-to-peer migration in flight, so the re-run must find it. It is the re-run's own (a
    migcoord lease whose owner is gone): adopted — placed onto the lease's destination, watched
    under the re-run's deadline (here aborted at it) — then migrated afresh."""
    lab = clean
    n = f"{name}-busy"
    lab.vm(n, on="src", dirty_memory=True)
    proc = migcoord.background(*evac_args(lab, "--bandwidth", "1", *ACCEPT_SHARED_IMAGE))
    lab.wait_for_job(n, timeout=90)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert lab.job_active("src", n), "the killed run's migration should still be in flight"
    first_dest = [e for e in migcoord.events(migcoord.bg_journal) if e["event"] == "migration-start"][0]["dest"]

    r = migcoord(*evac_args(lab, "--timeout", "8", *ACCEPT_SHARED_IMAGE, "--json"), timeout=300)

    assert r.returncode == 0, r.stderr_text + r.stdout_text
    events = migcoord.events()
    assert [e for e in events if e["event"] == "stale-job-adopted"], [e["event"] for e in events]
    host = {lab.uri("dst"): "dst", lab.uri("dst2"): "dst2"}[first_dest]
    assert lab.where(n) == {host: "running"}  # where the dead run was taking it
    with pytest.raises(libvirt.libvirtError) as no_lease:  # the dead run's lease was cleared after adopting
        lab.conn(host).lookupByName(n).metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                                 "https://migcoord.invalid/lease/1", 0)
    assert no_lease.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA
