"""core/secret_audit (the pure decision), flows/audit_secrets over recording fakes (what is read, what
never is), and the `secrets audit` command line (word form, exit codes, metrics, output)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from coordinator.cli import render
from coordinator.cli.cmd_secrets import audit_exit_code
from coordinator.cli.main import build_parser, main
from coordinator.core.errors import BadInput
from coordinator.core.exit_codes import ExitCode
from coordinator.core.metrics import AuditMetrics, RunMetrics
from coordinator.core.metrics import render as render_metrics
from coordinator.core.model import SecretInfo, SecretKind, SecretRef
from coordinator.core.secret_audit import (NO_VALUE, AuditedDomain, AuditedHost, AuditedSecret, Kind, audit,
                                           exit_kind)
from coordinator.core.secret_xml import parse_secret_xml

A, B, C = "qemu+tls://a.example/system", "qemu+tls://b.example/system", "qemu+tls://c.example/system"
U1, U2, U3 = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222",
              "33333333-3333-3333-3333-333333333333")


def sec(uuid: str = U1, usage: str = "vm1-vtpm", fp: str | None = "f1", *, utype: str = "vtpm",
        ephemeral: bool = False, private: bool = False, unknown: str | None = None) -> AuditedSecret:
    return AuditedSecret(uuid, utype, usage, ephemeral, private, fingerprint=None if private else fp,
                         unknown="private" if private else unknown)


def ref(uuid: str | None = U1, *, usage_type: str = "vtpm", usage_id: str | None = None) -> SecretRef:
    return SecretRef(uuid=uuid, usage_type=usage_type, kind=SecretKind.VTPM,
                     location="/domain/devices/tpm[1]/backend/encryption/@secret", usage_id=usage_id)


def dom(name: str = "vm1", *refs: SecretRef, persistent: bool = True, active: bool = False) -> AuditedDomain:
    return AuditedDomain(name, persistent=persistent, active=active, refs=refs or (ref(),))


def host(uri: str, secrets: tuple[AuditedSecret, ...] = (), domains: tuple[AuditedDomain, ...] = ()) -> AuditedHost:
    return AuditedHost(uri, secrets, domains)


def kinds(hosts: list[AuditedHost]) -> list[tuple[str, tuple[str, ...], str | None]]:
    return [(str(f.kind), f.hosts, f.uuid) for f in audit(hosts).findings]


# ------------------------------------------------------------------ the pure decision

def test_a_clean_fleet_has_no_finding_and_no_unknown():
    fleet = [host(A, (sec(),), (dom(),)), host(B, (sec(),), (dom(),))]
    report = audit(fleet)
    assert report.findings == () and report.unknowns == () and report.clean
    assert exit_kind(report) == "clean" and audit_exit_code("clean", False) == ExitCode.OK


def test_a_secret_only_a_transient_running_domain_uses_is_no_orphan():
    assert kinds([host(A, (sec(),), (dom(persistent=False, active=True),))]) == []


def test_a_usage_reference_resolves_like_libvirt_by_type_and_id():
    by_usage = dom("vm1", ref(None, usage_type="volume", usage_id="/img/vm1.luks"))
    disk = sec(U2, "/img/vm1.luks", utype="volume")
    assert kinds([host(A, (disk,), (by_usage,))]) == []
    other_type = sec(U2, "/img/vm1.luks", utype="vtpm")
    assert kinds([host(A, (other_type,), (by_usage,))]) == [("orphan", (A,), U2), ("missing", (A,), None)]


def test_orphan_names_what_it_might_have_belonged_to_and_who_uses_it_elsewhere():
    f, = audit([host(A, (sec(usage="vm-gone"),)), host(B, (), (dom("gone", ref()),))]).findings[:1]
    assert f.kind is Kind.ORPHAN and f.usage == "vtpm:vm-gone" and "vTPM" in f.detail
    assert "gone on " + B in f.detail and f.domains == (f"gone on {B}",)
    assert f.fix[-1] == f"virsh -c {A} secret-undefine {U1}" and "unreadable" in f.risk


def test_the_maintenance_marker_is_never_an_orphan_nor_a_usage_clash():
    marker = AuditedSecret(U1, "tls", "migcoord-maintenance", False, True, unknown="private")
    other = replace(marker, uuid=U2)
    assert kinds([host(A, (marker,)), host(B, (other,))]) == []


def test_missing_secret_says_the_domain_will_not_start_and_who_holds_it():
    f, = audit([host(A, (), (dom("vm1", ref(U2)),)), host(B, (sec(U2),), (dom("x", ref(U2)),))]).findings
    assert (f.kind, f.hosts, f.uuid, f.domains) == (Kind.MISSING, (A,), U2, ("vm1",))
    assert "will not start" in f.detail and f"held on {B}" in f.fix[0]
    assert any(f"secret-set-value {U2} --file KEYFILE --plain" in line for line in f.fix)


def test_a_domain_referencing_one_missing_secret_twice_is_one_finding():
    d = dom("vm1", ref(U2), replace(ref(U2), location="/domain/devices/disk[1]/source/encryption/secret"))
    assert kinds([host(A, (), (d,))]) == [("missing", (A,), U2)]


def test_ephemeral_secret_backing_a_persistent_domain_and_only_then():
    eph = sec(ephemeral=True)
    assert kinds([host(A, (eph,), (dom(),))]) == [("ephemeral", (A,), U1)]
    assert kinds([host(A, (eph,), (dom(persistent=False, active=True),))]) == []
    f, = audit([host(A, (eph,), (dom(),))]).findings
    assert "ephemeral='no'" in " ".join(f.fix) and "restart" in f.detail


def test_same_uuid_different_values_differs_and_same_value_does_not():
    fleet = [host(A, (sec(fp="x"),), (dom(),)), host(B, (sec(fp="y"),), (dom(),)), host(C, (sec(fp="x"),), (dom(),))]
    f, = audit(fleet).findings
    assert (f.kind, f.hosts, f.uuid) == (Kind.VALUE_DIFFERS, (A, B, C), U1)
    assert f"value 1: {A}, {C}" in f.detail and f"value 2: {B}" in f.detail
    assert "x" not in f.detail.replace("value", "").replace("example", "")  # no fingerprint in the words
    assert audit([host(A, (sec(fp="x"),), (dom(),)), host(B, (sec(fp="x"),), (dom(),))]).findings == ()


def test_a_value_on_one_host_and_none_on_the_other_differs():
    assert kinds([host(A, (sec(fp="x"),), (dom(),)), host(B, (sec(fp=NO_VALUE),), (dom(),))]) == [
        ("value-differs", (A, B), U1)]


@pytest.mark.parametrize("unread", ["private", "plaintext"])
def test_a_private_or_unread_value_is_unknown_never_differs(unread):
    other = sec(private=True) if unread == "private" else sec(fp=None, unknown="not read: plaintext")
    report = audit([host(A, (sec(fp="x"),), (dom(),)), host(B, (other,), (dom(),))])
    assert report.findings == ()
    u, = report.unknowns
    assert (u.uuid, u.hosts, list(u.reasons)) == (U1, (A, B), [B]) and "unknown" in u.detail
    assert exit_kind(report) == "unknown"
    assert audit_exit_code("unknown", False) == ExitCode.UNKNOWN and audit_exit_code("unknown", True) == ExitCode.OK


def test_two_private_copies_are_one_unknown():
    report = audit([host(A, (sec(private=True),), (dom(),)), host(B, (sec(private=True),), (dom(),))])
    assert report.findings == () and set(report.unknowns[0].reasons) == {A, B}


def test_known_values_that_differ_are_a_finding_even_beside_an_unknown():
    fleet = [host(h, (s,), (dom(),)) for h, s in ((A, sec(fp="x")), (B, sec(fp="y")), (C, sec(private=True)))]
    report = audit(fleet)
    assert [(str(f.kind), f.hosts) for f in report.findings] == [("value-differs", (A, B))]
    assert report.unknowns == ()


def test_usage_clash_between_hosts():
    fleet = [host(A, (sec(U1, "vm1-vtpm"),), (dom("vm1", ref(U1)),)),
             host(B, (sec(U2, "vm1-vtpm"),), (dom("vm1", ref(U2)),))]
    f, = audit(fleet).findings
    assert (f.kind, f.hosts, f.uuid, f.usage) == (Kind.USAGE_CLASH, (A, B), None, "vtpm:vm1-vtpm")
    assert f"{U1} on {A}" in f.detail and f"{U2} on {B}" in f.detail
    assert f"virsh -c {B} secret-undefine {U2}" in f.fix and exit_kind(audit(fleet)) == "findings"
    assert audit_exit_code("findings", True) == ExitCode.BLOCKED


def test_every_kind_is_counted_and_every_finding_says_how_to_fix_and_what_breaks():
    fleet = [host(A, (sec(U1, "vm1-vtpm", "x"), sec(U3, "gone", "z")), (dom("vm1", ref(U1)),)),
             host(B, (sec(U1, "vm1-vtpm", "y"), sec(U2, "vm1-vtpm", ephemeral=True)),
                  (dom("vm1", ref(U1)), dom("vm2", ref(U2)), dom("vm3", ref("44444444-4444-4444-4444-444444444444"))))]
    report = audit(fleet)
    assert report.counts() == {"orphan": 1, "missing": 1, "value-differs": 1, "ephemeral": 1, "usage-clash": 1}
    for f in report.findings:
        assert f.fix and any(line.startswith("virsh") or "virsh -c" in line for line in f.fix) and f.risk
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["counts"] == report.counts() and len(doc["findings"]) == 5


# ------------------------------------------------------------------ the flow over fakes

VALUE = b"0123456789abcdef-THE-SECRET-VALUE"


class FakeGuest:
    def __init__(self, name: str, secret: str) -> None:
        self.name = name
        self.secret = secret

    def definitions(self, active=None, persistent=None):
        return [f"<domain><name>{self.name}</name><devices><tpm model='tpm-crb'><backend type='emulator'>"
                f"<encryption secret='{self.secret}'/></backend></tpm></devices></domain>"]


class FakeHost:
    value_reads: list[str] = []
    changes: list[str] = []

    def __init__(self, uri: str, secrets: list[tuple[str, bool, bytes | None]], guests: list[FakeGuest],
                 host_uuid: str) -> None:
        self.uri, self._secrets, self._guests, self._host_uuid = uri, secrets, guests, host_uuid

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def host_uuid(self):
        return self._host_uuid

    def secret_infos(self) -> list[SecretInfo]:
        return [parse_secret_xml(f"<secret ephemeral='no' private='{'yes' if p else 'no'}'><uuid>{u}</uuid>"
                                 f"<usage type='vtpm'><name>vm1-vtpm</name></usage></secret>")
                for u, p, _ in self._secrets]

    def secret_value_if_set(self, uuid: str):
        FakeHost.value_reads.append(f"{self.uri} {uuid}")
        return next(bytearray(v) if v is not None else None for u, _, v in self._secrets if u == uuid)

    def guests_by_state(self):
        return [(g, False, True) for g in self._guests]

    def __getattr__(self, name: str):  # define_secret, set_secret_value, undefine_secret, ...: never
        FakeHost.changes.append(name)
        raise AssertionError(f"audit called {name}")


def _fleet(a_value: bytes, b_value: bytes, *, private: bool = False) -> dict[str, FakeHost]:
    return {u: FakeHost(u, [(U1, private, v)], [FakeGuest("vm1", U1)], f"host-{i}")
            for i, (u, v) in enumerate(((A, a_value), (B, b_value)))}


def _audit(fleet, uris=(A, B), **kw):
    from coordinator.flows.audit_secrets import audit_secrets

    FakeHost.value_reads, FakeHost.changes = [], []
    return audit_secrets(list(uris), connect=fleet.__getitem__, **kw)


def test_the_flow_compares_readable_values_by_fingerprint_and_never_shows_them():
    report = _audit(_fleet(VALUE, b"another value"))
    assert [f.kind for f in report.findings] == [Kind.VALUE_DIFFERS]
    assert FakeHost.value_reads == [f"{A} {U1}", f"{B} {U1}"] and FakeHost.changes == []
    fps = [s.fingerprint for h in report.hosts for s in h.secrets]
    assert len(set(fps)) == 2 and all(fp and len(fp) == 16 for fp in fps)
    same = _audit(_fleet(VALUE, VALUE))
    assert same.findings == () and same.unknowns == ()
    out = render.as_json(report.as_dict()) + render.secret_audit(report, ExitCode.BLOCKED) + repr(report)
    for form in (VALUE, VALUE.hex().encode()):
        assert form.decode() not in out
    import base64
    import hashlib
    assert base64.b64encode(VALUE).decode() not in out and hashlib.sha256(VALUE).hexdigest()[:16] not in out


def test_fingerprints_differ_between_runs_so_they_cannot_be_matched_later():
    one = _audit(_fleet(VALUE, VALUE)).hosts[0].secrets[0].fingerprint
    two = _audit(_fleet(VALUE, VALUE)).hosts[0].secrets[0].fingerprint
    assert one != two


def test_over_a_plaintext_remote_uri_no_value_is_read_without_the_override():
    pa, pb = "qemu+tcp://a.example/system", "qemu+tcp://b.example/system"
    fleet = {pa: FakeHost(pa, [(U1, False, VALUE)], [FakeGuest("vm1", U1)], "h1"),
             pb: FakeHost(pb, [(U1, False, b"other")], [FakeGuest("vm1", U1)], "h2")}
    report = _audit(fleet, (pa, pb))
    assert FakeHost.value_reads == [] and report.findings == ()
    u, = report.unknowns
    assert "--allow-plaintext-secrets" in u.reasons[pa] and [h.values_read for h in report.hosts] == [False, False]
    allowed = _audit(fleet, (pa, pb), allow_plaintext=True)
    assert len(FakeHost.value_reads) == 2 and [f.kind for f in allowed.findings] == [Kind.VALUE_DIFFERS]


def test_a_private_value_is_never_asked_for():
    report = _audit(_fleet(VALUE, VALUE, private=True))
    assert FakeHost.value_reads == [] and report.findings == () and len(report.unknowns) == 1


def test_bad_input_is_refused_before_any_connection():
    def never(uri):
        raise AssertionError("connected")

    from coordinator.flows.audit_secrets import audit_secrets

    for uris in ([], [A, A], ["qemu+tcp://[bad/system"], [A, "not a uri\n"]):
        with pytest.raises(BadInput):
            audit_secrets(uris, connect=never)


def test_two_spellings_of_one_host_are_refused():
    fleet = _fleet(VALUE, VALUE)
    fleet[B]._host_uuid = fleet[A]._host_uuid
    with pytest.raises(BadInput, match="same host"):
        _audit(fleet)


# ------------------------------------------------------------------ the command line

def test_secrets_audit_is_a_word_form_and_a_domain_named_audit_stays_reachable():
    p = build_parser()
    ns = p.parse_args(["secrets", "audit", A, B, "--json"])
    assert (ns.command, ns.hosts, ns.json) == ("secrets-audit", [A, B], True)
    for argv in (["secrets", "--", "audit", "--from", A, "--to", B], ["secrets", "--from", A, "--to", B, "audit"]):
        ns = build_parser().parse_args(argv)
        assert (ns.command, ns.domain, ns.src, ns.dst) == ("secrets", "audit", A, B)
    ns = build_parser().parse_args(["secrets", "vm1", "--from", A, "--to", B])
    assert (ns.command, ns.domain) == ("secrets", "vm1")


def test_audit_help_lists_its_exit_codes(capsys):
    assert main(["secrets", "audit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: migcoord secrets audit" in out and "exit codes:" in out
    for code in (0, 1, 2, 6):
        assert f"\n  {code}  " in out
    assert main(["secrets", "--help"]) == 0
    assert "migcoord secrets -- audit --from SRC --to DST" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["secrets", "audit"], ["secrets", "audit", "qemu+tcp://[bad/system"],
                                  ["secrets", "audit", A, A]])
def test_bad_audit_input_is_one_line_exit_2(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("coordinator.core.config.DEFAULT_PATH", str(tmp_path / "absent.toml"))
    monkeypatch.setattr("coordinator.virt.host.Host.open", lambda uri: (_ for _ in ()).throw(AssertionError))
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("migcoord: error:")


def test_the_audit_metrics_count_every_kind():
    text = render_metrics(RunMetrics(command="secrets-audit", source=f"{A},{B}", exit_code=1, finished_at=1.0,
                                     duration_s=0.5, audit=AuditMetrics({str(k): int(k is Kind.ORPHAN) for k in Kind},
                                                                        unknown=2, hosts=2)))
    assert 'migcoord_secret_audit_findings{command="secrets-audit",source="' in text
    assert 'kind="orphan"} 1' in text and 'kind="usage-clash"} 0' in text
    assert "migcoord_secret_audit_unknown" in text and "migcoord_domain_result" not in text
    assert "migcoord_last_run_exit_code" in text
