"""``migcoord secrets audit HOST...`` on the real lab: every finding produced for real, read-only.

Domains are defined from XML only (never started): an audit reads definitions, not guests."""
from __future__ import annotations

import json
import secrets as pysecrets
import uuid as uuidlib

from labkit.client import Lab, assert_no_value
from labkit.guests import VM_XML


def _secret(lab: Lab, host: str, usage_type: str, usage_id: str, value: bytes | None, *, uuid: str | None = None,
            private: bool = False, ephemeral: bool = False) -> str:
    sid = uuid or str(uuidlib.uuid4())
    el = {"vtpm": "name", "volume": "volume"}[usage_type]
    sec = lab.conn(host).secretDefineXML(
        f"<secret ephemeral='{'yes' if ephemeral else 'no'}' private='{'yes' if private else 'no'}'>"
        f"<uuid>{sid}</uuid><usage type='{usage_type}'><{el}>{usage_id}</{el}></usage></secret>", 0)
    if value is not None:
        sec.setValue(value, 0)
    return sid


def _domain(lab: Lab, host: str, name: str, secret_uuid: str) -> None:
    """A persistent, shut-off domain with an encrypted vTPM (libvirt defines it even when the secret is
    missing: it is needed only at start)."""
    lab.conn(host).defineXML(VM_XML.format(accel=lab.env.get("accel") or "qemu", name=name, memory=64,
                                           uuid=secret_uuid, disks="", cpu=lab.env["cpu"]["xml"]))


def test_every_finding_kind_is_reported_and_nothing_changes(clean, name, migcoord, tmp_path):
    lab = clean
    src, dst, dst2 = (lab.uri(h) for h in ("src", "dst", "dst2"))
    values = {k: pysecrets.token_bytes(32) for k in ("a", "a-other", "orphan", "disk", "eph", "clash", "b")}
    # clean on src: domain A and its readable vTPM secret
    sa = _secret(lab, "src", "vtpm", f"{name}-a-vtpm", values["a"])
    _domain(lab, "src", f"{name}-a", sa)
    # orphans on src: a vTPM secret of a VM that is gone, a LUKS volume's passphrase
    orphan = _secret(lab, "src", "vtpm", f"vm-{name}-gone", values["orphan"])
    disk = _secret(lab, "src", "volume", f"/var/lib/libvirt/images/{name}-gone.luks", values["disk"])
    # dst: a leftover copy of A's secret with ANOTHER value (orphan there, value differs)
    _secret(lab, "dst", "vtpm", f"{name}-a-vtpm", values["a-other"], uuid=sa)
    # dst: domain B whose secret this host lacks
    missing = str(uuidlib.uuid4())
    _domain(lab, "dst", f"{name}-b", missing)
    # dst2: an ephemeral secret backing persistent domain C; and A's usage under another UUID
    eph = _secret(lab, "dst2", "vtpm", f"{name}-c-vtpm", values["eph"], ephemeral=True)
    _domain(lab, "dst2", f"{name}-c", eph)
    clash = _secret(lab, "dst2", "vtpm", f"{name}-a-vtpm", values["clash"])
    before = lab.snapshot()
    metrics = tmp_path / "audit.prom"

    r = migcoord("secrets", "audit", src, dst, dst2, "--json", "--metrics-file", str(metrics), timeout=60)

    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    got = {(f["kind"], tuple(f["hosts"]), f["uuid"]) for f in doc["findings"]}
    assert got == {
        ("orphan", (src,), orphan), ("orphan", (src,), disk),
        ("orphan", (dst,), sa), ("orphan", (dst2,), clash),
        ("missing", (dst,), missing),
        ("ephemeral", (dst2,), eph),
        ("value-differs", (src, dst), sa),
        ("usage-clash", (src, dst, dst2), None),
    }
    by = {(f["kind"], f["uuid"]): f for f in doc["findings"]}
    assert f"vm-{name}-gone" in by["orphan", orphan]["usage"]
    assert by["orphan", disk]["usage"] == f"volume:/var/lib/libvirt/images/{name}-gone.luks"
    assert f"{name}-a on {src}" in by["orphan", sa]["detail"]  # the leftover's owner elsewhere
    assert by["missing", missing]["domains"] == [f"{name}-b"] and "will not start" in by["missing", missing]["detail"]
    assert any(f"secret-undefine {orphan}" in line for line in by["orphan", orphan]["fix"])
    assert "unreadable" in by["orphan", orphan]["risk"]
    assert doc["counts"] == {"orphan": 4, "missing": 1, "value-differs": 1, "ephemeral": 1, "usage-clash": 1}
    assert doc["exit_code"] == 1 and doc["clean"] is False
    prom = metrics.read_text()
    assert 'migcoord_secret_audit_findings{command="secrets-audit",' in prom and "migcoord_last_run_exit_code" in prom
    assert 'kind="orphan"} 4' in prom

    t = migcoord("secrets", "audit", src, dst, dst2, timeout=60)  # the table
    assert t.returncode == 1
    table = t.stdout.decode()
    assert table.splitlines()[0].split() == ["HOST", "SECRETS", "DOMAINS", "VALUES"]
    assert "value-differs" in table and "usage-clash" in table and "   fix: virsh -c" in table
    assert table.rstrip().splitlines()[-1].startswith("FINDINGS: 4 orphan, 1 missing")

    assert lab.snapshot() == before  # nothing changed anywhere
    for v in values.values():
        assert_no_value(v, r.stdout, r.stderr, t.stdout, t.stderr, prom.encode())


def test_a_clean_fleet_is_clean_and_a_private_copy_is_unknown_not_different(clean, name, migcoord):
    lab = clean
    src, dst = lab.uri("src"), lab.uri("dst")
    value = pysecrets.token_bytes(32)
    readable = _secret(lab, "src", "vtpm", f"{name}-r", value)
    _domain(lab, "src", f"{name}-r", readable)
    _secret(lab, "dst", "vtpm", f"{name}-r", value, uuid=readable)  # the same value: no finding
    _domain(lab, "dst", f"{name}-r", readable)
    r = migcoord("secrets", "audit", src, dst, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.decode().rstrip().endswith("CLEAN: no finding on 2 host(s)")

    private = _secret(lab, "src", "vtpm", f"{name}-p", b"one value", private=True)
    _domain(lab, "src", f"{name}-p", private)
    _secret(lab, "dst", "vtpm", f"{name}-p", b"another value", uuid=private, private=True)
    _domain(lab, "dst", f"{name}-p", private)
    before = lab.snapshot()
    r = migcoord("secrets", "audit", src, dst, "--json", timeout=60)
    assert r.returncode == 6, r.stderr  # UNKNOWN: never "differs" for a value that cannot be read
    doc = json.loads(r.stdout)
    assert doc["findings"] == []
    assert [(u["uuid"], u["hosts"]) for u in doc["unknown"]] == [(private, [src, dst])]
    assert "private" in doc["unknown"][0]["reasons"][src]
    assert migcoord("secrets", "audit", src, dst, "--accept-unknown", timeout=60).returncode == 0
    assert lab.snapshot() == before
    assert_no_value(value, r.stdout, r.stderr)


def test_over_plaintext_no_value_is_read_unless_allowed(clean, name, migcoord):
    lab = clean
    sid = _secret(lab, "src", "vtpm", f"{name}-v", b"the source value 0123456789abcdef")
    _domain(lab, "src", name, sid)
    _secret(lab, "dst", "vtpm", f"{name}-v", b"another value 0123456789abcdef!!", uuid=sid)
    _domain(lab, "dst", name, sid)
    before = lab.snapshot()
    hosts = ("qemu+tcp://src/system", "qemu+tcp://dst/system")

    r = migcoord("secrets", "audit", *hosts, "--json", names=True, timeout=60)
    assert r.returncode == 6, r.stderr
    doc = json.loads(r.stdout)
    assert doc["findings"] == [] and [h["values_read"] for h in doc["hosts"]] == [False, False]
    assert "--allow-plaintext-secrets" in doc["unknown"][0]["reasons"]["qemu+tcp://src/system"]

    r = migcoord("secrets", "audit", *hosts, "--json", "--allow-plaintext-secrets", names=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert [f["kind"] for f in json.loads(r.stdout)["findings"]] == ["value-differs"]
    assert lab.snapshot() == before
    for v in (b"the source value 0123456789abcdef", b"another value 0123456789abcdef!!"):
        assert_no_value(v, r.stdout, r.stderr)


def test_bad_input_is_one_line_and_a_domain_named_audit_stays_reachable(clean, migcoord):
    lab = clean
    r = migcoord("secrets", "audit", lab.uri("src"), "qemu+tcp://[bad/system", timeout=60)
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and "[bad" in r.stderr.decode()
    r = migcoord("secrets", "audit", lab.uri("src"), "qemu+tcp://127.0.0.254:1/system", timeout=60)
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and "cannot connect" in r.stderr.decode()
    r = migcoord("secrets", "audit", lab.uri("src"), lab.uri("src").replace("/system", ":16509/system"), timeout=60)
    assert r.returncode == 2 and "same host" in r.stderr.decode()  # two spellings of one host

    sid = _secret(lab, "src", "vtpm", "audit-vtpm", pysecrets.token_bytes(32))
    _domain(lab, "src", "audit", sid)
    for argv in (["--", "audit", "--from", lab.uri("src"), "--to", lab.uri("dst")],
                 ["--from", lab.uri("src"), "--to", lab.uri("dst"), "audit"]):
        r = migcoord("secrets", *argv, "--json") if argv[0] != "--" else migcoord("secrets", *argv)
        assert r.returncode == 0, r.stderr_text
        assert sid in r.stdout_text and "provision" in r.stdout_text
