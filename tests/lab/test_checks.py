"""Pre-flight checks on the real lab: each check's failing case produced for real, and `check`
changes nothing anywhere. The CLI is exercised in-process through checks.command (the way
coordinator/cli.py wires it), the library through checks.preflight."""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import libvirt
import pytest

import checks
from checks import command
from coordinator.errors import BadInput, MigcoordError
from coordinator.params import MigrationPolicy

UNREACHABLE = "qemu+tcp://127.0.0.99/system"  # loopback address where nothing listens


@pytest.fixture
def check_cli(capsys):
    """Run `migcoord check ...` in-process: (exit code, stdout)."""
    def run(*argv: str) -> tuple[int, str]:
        p = argparse.ArgumentParser(prog="migcoord")
        command.add_parser(p.add_subparsers(dest="command"))
        args = p.parse_args(["check", *argv])
        try:
            rc = command.run(args)
        except MigcoordError as e:
            rc = e.exit_code
        return rc, capsys.readouterr().out
    return run


def snapshot(lab) -> dict:
    """Every host's secrets (XML + stored value digest) and domains (state, XML)."""
    out = {}
    for h in lab.env["hosts"]:
        c = lab.conn(h)
        out[h] = {
            "secrets": {u: (lab.secret_xml(h, u), lab.digest(h, u)) for u in sorted(lab.secret_uuids(h))},
            "domains": {d.name(): (d.state()[0], d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                        for d in c.listAllDomains(0)},
            "networks": sorted(n.name() for n in c.listAllNetworks(0)),
        }
    return out


def statuses(report: dict, subject: str) -> dict[str, str]:
    return {f["check_id"]: f["status"] for f in report["findings"] if f["subject"] in (subject, "-")
            or f["subject"].startswith("qemu")}


def find(report: dict, check_id: str) -> list[dict]:
    return [f for f in report["findings"] if f["check_id"] == check_id]


def test_healthy_domain_passes_every_check_json_field_by_field_and_nothing_changes(clean, name, check_cli):
    lab = clean
    lab.vm(name, on="src")
    before = snapshot(lab)

    ssh = lab.env["ssh"]
    rc, out = check_cli(name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json",
                        "--ssh-key", ssh["key"], "--ssh-known-hosts", ssh["known_hosts"])

    assert rc == 0, out
    rep = json.loads(out)
    assert set(rep) == {"ok", "source", "destination", "domains", "waive", "skip", "blocking", "counts",
                        "findings"}
    assert rep["ok"] is True and rep["blocking"] == [] and rep["domains"] == [name]
    assert (rep["source"], rep["destination"], rep["waive"], rep["skip"]) == (lab.uri("src"), lab.uri("dst"),
                                                                                [], [])
    # libvirt 9.0 keeps persistent secrets as plain base64 on disk: the one expected warning.
    assert [(f["check_id"], f["severity"], f["status"]) for f in rep["findings"] if f["status"] != "pass"] == [
        ("SECRET-AT-REST-UNENCRYPTED", "warning", "fail")]
    assert rep["counts"] == {"pass": len(rep["findings"]) - 1, "fail": 1, "error": 0, "skipped": 0, "waived": 0}
    assert {f["check_id"] for f in rep["findings"] if f["transport"] == "ssh"} == {
        "SWTPM-MISSING", "SWTPM-CAPABILITIES", "SWTPM-VERSION-OLDER", "TPM-STATE-SPACE",
        "SECRET-AT-REST-UNENCRYPTED"}
    ids = [f["check_id"] for f in rep["findings"]]
    assert set(ids) == set(checks.REGISTRY.checks)  # every registered check reported
    assert find(rep, "HOST-REACHABLE") == [
        {"check_id": "HOST-REACHABLE", "severity": "error", "status": "pass", "subject": lab.uri(h),
         "message": "connected", "hint": checks.REGISTRY.checks["HOST-REACHABLE"].hint, "transport": "libvirt"}
        for h in ("src", "dst")]
    assert [f["message"] for f in find(rep, "LIBVIRT-VERSION")] == ["libvirt 9.0.0", "libvirt 9.0.0"]
    assert find(rep, "HOST-SAME")[0]["message"] == (f"distinct host UUIDs ({lab.env['hosts']['src']['host_uuid']}"
                                                    f" → {lab.env['hosts']['dst']['host_uuid']})")
    dom = {f["check_id"]: f for f in rep["findings"] if f["subject"] == name}
    assert dom["DOMAIN-STATE"]["message"] == "running"
    assert dom["DOMAIN-JOB-ACTIVE"]["message"] == "no job in progress"
    assert dom["SECRET-VALUE-MISMATCH"]["message"] == "1 secret(s) checked"
    assert dom["TPM-CAPS"]["message"] == "destination offers tpm-crb/emulator/2.0"
    assert dom["CPU-INCOMPATIBLE"]["message"].startswith("CPU ")  # host-model, expanded in the live XML
    assert dom["MEMORY-INSUFFICIENT"]["message"].startswith("guest needs 128 MiB, destination has ")
    assert snapshot(lab) == before


def test_table_output_and_exit_1_when_blocked(clean, name, check_cli):
    lab = clean
    lab.vm(name, on="src", no_start=True)
    before = snapshot(lab)

    rc, out = check_cli(name, "--from", lab.uri("src"), "--to", lab.uri("dst"))

    assert rc == 1
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "STATUS", "SUBJECT", "MESSAGE"]
    row = next(line for line in lines if line.startswith("DOMAIN-STATE"))
    assert row.split()[:4] == ["DOMAIN-STATE", "error", "FAIL", name] and "shutoff" in row
    assert "hint DOMAIN-STATE: start the domain" in out
    assert lines[-1] == "BLOCKED by DOMAIN-STATE"
    assert snapshot(lab) == before


def test_incompatible_cpu_model_qemu64(clean, name, check_cli):
    # NOTE: a running qemu64 guest cannot be created on this machine (QEMU refuses to start it:
    # "Host CPU does not provide required features: svm"), so the failing case is a defined,
    # shut-off qemu64 domain; the passing case is the running host-model guest.
    lab = clean
    lab.vm(name, on="src", cpu_model="qemu64", no_start=True)
    lab.vm(f"{name}-ok", on="src")

    rc, out = check_cli(name, f"{name}-ok", "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json",
                        "--skip", "DOMAIN-STATE")

    assert rc == 1
    rep = json.loads(out)
    bad, good = [{f["subject"]: f for f in find(rep, "CPU-INCOMPATIBLE")}[n] for n in (name, f"{name}-ok")]
    assert (bad["status"], bad["severity"]) == ("fail", "error")
    assert bad["message"].startswith("CPU qemu64 is incompatible with the destination:")
    assert "svm" in bad["message"]
    assert good["status"] == "pass"
    assert rep["blocking"] == ["CPU-INCOMPATIBLE"]
    assert find(rep, "DOMAIN-STATE") == [{"check_id": "DOMAIN-STATE", "severity": "error", "status": "skipped",
                                          "subject": "-", "message": "skipped on request",
                                          "hint": checks.REGISTRY.checks["DOMAIN-STATE"].hint,
                                          "transport": "libvirt"}]


def test_network_missing_on_destination_then_present(clean, name):
    # A bridge-mode libvirt network needs no host change to be defined and started (libvirt
    # creates nothing for it). The domain using it stays shut off: the bridge does not exist.
    lab = clean
    net = f"h3n-{name[-6:]}"
    net_xml = f"<network><name>{net}</name><forward mode='bridge'/><bridge name='h3br{name[-6:]}'/></network>"
    lab.vm(name, on="src", no_start=True)
    dom = lab.conn("src").lookupByName(name)
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).replace(
        "</devices>", f"<interface type='network'><source network='{net}'/><model type='virtio'/></interface>"
                      "</devices>")
    created = []
    try:
        n = lab.conn("src").networkDefineXML(net_xml)
        created.append(n)
        n.create()
        lab.conn("src").defineXML(xml)
        policy = MigrationPolicy(live=False)

        rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name], policy=policy)
        f = rep.by_id("NETWORK-UNAVAILABLE")
        assert [(x.status, x.subject, x.message) for x in f] == [
            ("fail", name, f"network {net!r} is not defined on the destination")]
        assert [x.check_id for x in rep.blocking] == ["NETWORK-UNAVAILABLE"]

        d = lab.conn("dst").networkDefineXML(net_xml)
        created.append(d)
        rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name], policy=policy)
        assert [(x.status, x.message) for x in rep.by_id("NETWORK-UNAVAILABLE")] == [
            ("fail", f"network {net!r} is defined but not active on the destination")]

        d.create()
        rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name], policy=policy)
        assert [(x.status, x.message) for x in rep.by_id("NETWORK-UNAVAILABLE")] == [
            ("pass", f"network(s) {net} active on the destination")]
        assert rep.ok
    finally:
        for n in created:
            if n.isActive():
                n.destroy()
            n.undefine()


def test_same_name_domain_on_destination(clean, name, check_cli):
    lab = clean
    lab.vm(name, on="src")
    lab.vm(name, on="dst", no_start=True)
    dst_uuid = lab.conn("dst").lookupByName(name).UUIDString()

    rc, out = check_cli(name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json")

    assert rc == 1
    rep = json.loads(out)
    assert rep["blocking"] == ["DOMAIN-EXISTS-ON-DEST"]
    (f,) = find(rep, "DOMAIN-EXISTS-ON-DEST")
    assert (f["status"], f["subject"]) == ("fail", name)
    assert f["message"] == f"{lab.uri('dst')} already has a domain with this name: {name} ({dst_uuid}, shutoff)"


def test_different_secret_value_on_destination_and_waiving_it(clean, name, check_cli):
    lab = clean
    sid = lab.vm(name, on="src")["secret"]
    lab.define_secret("dst", sid, "vtpm", f"{name}-vtpm", b"not the same value at all, 32 b!")
    before = snapshot(lab)
    args = (name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json")

    rc, out = check_cli(*args)

    assert rc == 1
    rep = json.loads(out)
    assert rep["blocking"] == ["SECRET-VALUE-MISMATCH"]
    (f,) = find(rep, "SECRET-VALUE-MISMATCH")
    assert (f["status"], f["severity"], f["subject"]) == ("fail", "error", name)
    assert f["message"].startswith(f"secret {sid} (vtpm): secret {sid} has a different value on")
    assert all(x["status"] == "pass" for x in find(rep, "SECRET-UNVERIFIABLE"))

    rc, out = check_cli(*args, "--waive", "SECRET-VALUE-MISMATCH")

    assert rc == 0
    rep = json.loads(out)
    assert rep["ok"] is True and rep["waive"] == ["SECRET-VALUE-MISMATCH"] and rep["counts"]["waived"] == 1
    assert find(rep, "SECRET-VALUE-MISMATCH")[0]["status"] == "waived"
    assert snapshot(lab) == before
    assert lab.stored_value("src", sid) not in out.encode()


def test_private_secret_without_value_source(clean, name):
    lab = clean
    sid = lab.vm(name, on="src", secret="private")["secret"]

    rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name])

    assert [f.check_id for f in rep.blocking] == ["SECRET-NO-VALUE-SOURCE"]
    assert sid in rep.blocking[0].message and "--secret-file" in rep.blocking[0].hint


def test_private_secret_already_on_destination_is_unverifiable_warning(clean, name):
    lab = clean
    sid = lab.vm(name, on="src", secret="private")["secret"]
    lab.define_secret("dst", sid, "vtpm", f"{name}-vtpm", lab.stored_value("src", sid), private=True)

    rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name])

    (f,) = rep.by_id("SECRET-UNVERIFIABLE")
    assert (f.status, f.severity) == ("fail", "warning") and sid in f.message
    assert rep.ok  # a warning informs, it does not block


def test_migration_job_in_progress(clean, name):
    # A real outgoing migration, slowed down (--bandwidth 1 on a 1 GiB guest) so that its job is
    # visible for a few seconds; the check runs while it is active.
    lab = clean
    lab.vm(name, on="src", memory=1024)
    dom = lab.conn("src").lookupByName(name)
    import coordinator
    errors = []

    def migrate():
        try:
            coordinator.migrate(name, lab.uri("src"), lab.uri("dst2"), policy=MigrationPolicy(bandwidth_mib=1),
                                lock_dir=Path(tempfile.mkdtemp()))
        except Exception as e:  # reported below
            errors.append(e)

    th = threading.Thread(target=migrate)
    th.start()
    try:
        deadline = time.monotonic() + 60
        while dom.jobStats(0).get("type", 0) == libvirt.VIR_DOMAIN_JOB_NONE:
            assert time.monotonic() < deadline and th.is_alive(), errors
            time.sleep(0.05)
        rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name])
    finally:
        th.join(timeout=120)
    assert not errors
    (f,) = rep.by_id("DOMAIN-JOB-ACTIVE")
    assert (f.status, f.subject) == ("fail", name)
    assert f.message == "a job (unbounded) is in progress on the domain (virDomainGetJobStats)"
    assert lab.where(name) == {"dst2": "running"}

    rep = checks.preflight(lab.uri("dst2"), lab.uri("dst"), [name])
    assert [f.status for f in rep.by_id("DOMAIN-JOB-ACTIVE")] == ["pass"]


def test_unreachable_host(clean, name, check_cli):
    lab = clean
    lab.vm(name, on="src")

    rc, out = check_cli(name, "--from", lab.uri("src"), "--to", UNREACHABLE, "--json")

    assert rc == 1
    rep = json.loads(out)
    assert rep["blocking"] == ["HOST-REACHABLE"]
    reach = find(rep, "HOST-REACHABLE")
    assert [(f["subject"], f["status"]) for f in reach] == [(lab.uri("src"), "pass"), (UNREACHABLE, "fail")]
    assert reach[1]["message"].startswith(f"cannot connect to {UNREACHABLE}: unable to connect to server")
    assert "[VIR_ERR_SYSTEM_ERROR/VIR_FROM_RPC]" in reach[1]["message"]
    needing_dst = [c.id for c in checks.REGISTRY.checks.values() if "dst" in c.needs]
    for cid in needing_dst:
        assert [(f["status"], f["message"]) for f in find(rep, cid)] == [
            ("skipped", "not run: dst host unreachable")], cid
    assert [f["status"] for f in find(rep, "DOMAIN-STATE")] == ["pass"]  # source-only checks still run


def test_memory_insufficient_on_destination(clean, name):
    lab = clean
    lab.vm(name, on="src", memory=64 * 1024, no_start=True)  # 64 GiB: more than this machine has

    rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name], policy=MigrationPolicy(live=False))

    (f,) = rep.by_id("MEMORY-INSUFFICIENT")
    assert f.status == "fail" and f.message.startswith("guest needs 65536 MiB, destination has ")


def test_local_disk_warns_unless_copy_storage(clean, name):
    lab = clean
    lab.vm(name, on="src", luks_disk="local")

    rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name])
    (f,) = rep.by_id("STORAGE-NOT-SHARED")
    assert (f.status, f.severity) == ("fail", "warning")
    assert f"/var/lib/libvirt/images/{name}.luks" in f.message and "--copy-storage" in f.hint

    rep = checks.preflight(lab.uri("src"), lab.uri("dst"), [name], policy=MigrationPolicy(copy_storage=True))
    assert [(f.status, f.message) for f in rep.by_id("STORAGE-NOT-SHARED")] == [
        ("pass", "1 disk(s) handled by --copy-storage")]


def test_bad_input_exit_2(clean, name, check_cli):
    lab = clean
    assert check_cli("no-such-domain", "--from", lab.uri("src"), "--to", lab.uri("dst"))[0] == 2
    assert check_cli(name, "--from", "http://x", "--to", lab.uri("dst"))[0] == 2
    assert check_cli(name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--skip", "NOPE")[0] == 2
    with pytest.raises(BadInput):
        checks.preflight(lab.uri("src"), lab.uri("dst"), [name], waive=["NOPE"])


def test_same_host_as_destination(clean, name):
    lab = clean
    lab.vm(name, on="src")
    # the same daemon under another spelling of its URI
    alias = lab.uri("src").replace("/system", "/system?no_verify=1")

    rep = checks.preflight(lab.uri("src"), alias, [name], skip=["domain"])

    (f,) = rep.by_id("HOST-SAME")
    assert f.status == "fail" and lab.env["hosts"]["src"]["host_uuid"] in f.message


def test_without_ssh_the_ssh_checks_are_skipped_and_libvirt_checks_still_run(clean, name, check_cli):
    lab = clean
    lab.vm(name, on="src")
    rc, out = check_cli(name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json")
    assert rc == 0, out
    rep = json.loads(out)
    ssh = [f for f in rep["findings"] if f["transport"] == "ssh"]
    assert ssh and {(f["status"], f["message"]) for f in ssh} == {("skipped", "SSH not configured")}
    assert all(f["status"] == "pass" for f in rep["findings"] if f["transport"] == "libvirt")


def test_unknown_ssh_host_key_is_refused(clean, name, check_cli, tmp_path):
    lab = clean
    lab.vm(name, on="src")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    rc, out = check_cli(name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json",
                        "--ssh-key", lab.env["ssh"]["key"], "--ssh-known-hosts", str(empty))
    rep = json.loads(out)
    errors = [f for f in rep["findings"] if f["transport"] == "ssh" and f["status"] == "error"]
    assert errors and all("known_hosts" in f["message"] or "host key" in f["message"] for f in errors)
    assert rc == 1 and empty.read_text() == ""  # never auto-added
