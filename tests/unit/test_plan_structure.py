"""The evacuation plan's structure at fleet size, without timing: against counting fake hosts, the libvirt
calls grow as constant + k·N per destination (the pair checks once per destination, everything a host
says about itself once per run), a domain's source reads happen once for all destinations, and every
domain XML is parsed once."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from coordinator.core.evacuation import EvacuationPolicy
from coordinator.core.model import SecretInfo
from coordinator.flows.evacuate import plan_evacuation
from coordinator.steps.parameters import MigrateOptions
from coordinator.virt.guest import GuestStatus, JobInfo

SRC, DST, DST2 = "qemu+tls://hv1.example/system", "qemu+tls://hv2.example/system", "qemu+tls://hv3.example/system"
NS = "https://migcoord.invalid/lease/1"
DOMCAPS = ("<domainCapabilities><cpu><mode name='host-model' supported='yes'/></cpu><devices>"
           "<tpm supported='yes'><enum name='model'><value>tpm-crb</value></enum>"
           "<enum name='backendModel'><value>emulator</value></enum>"
           "<enum name='backendVersion'><value>2.0</value></enum></tpm></devices></domainCapabilities>")


CAPS = ("<capabilities><guest><arch name='x86_64'><machine canonical='pc-q35-9.2'>q35</machine>"
        "<machine>pc-q35-9.2</machine></arch></guest></capabilities>")


def uuid(i: int, kind: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{i:012x}"


def domain_xml(i: int, metadata: str = "") -> str:
    return (f"<domain type='kvm'><name>vm{i:04d}</name><uuid>{uuid(i, 1)}</uuid><memory unit='MiB'>32</memory>"
            f"{f'<metadata>{metadata}</metadata>' if metadata else ''}"
            "<os><type arch='x86_64' machine='q35'>hvm</type></os><cpu mode='host-model'/>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            f"<tpm model='tpm-crb'><backend type='emulator' version='2.0'><encryption secret='{uuid(i, 2)}'/>"
            "</backend></tpm></devices></domain>")


class FakeGuest:
    def __init__(self, host: FakeHost, i: int, active: bool, metadata: str = "") -> None:
        self.host, self.i, self.active = host, i, active
        self.name, self.uuid = f"vm{i:04d}", uuid(i, 1)
        self.xml = domain_xml(i, metadata)
        self.inactive_xml = domain_xml(i, metadata) + "\n"  # another document than the live one

    def _call(self, what: str) -> None:
        self.host.calls[what] += 1

    def definitions(self, active: bool | None = None, persistent: bool | None = None) -> list[str]:
        self._call("domain XML")
        if self.active:
            self._call("domain XML")
            return [self.xml, self.inactive_xml]
        return [self.inactive_xml]

    def status(self) -> GuestStatus:
        self._call("status")
        return GuestStatus("running" if self.active else "shutoff", self.active, True, False)

    def job(self) -> JobInfo:
        self._call("job")
        return JobInfo(active=False, data_total=0, data_processed=0, data_remaining=0, elapsed_ms=0, mem_bps=0)

    def is_active(self) -> bool:
        self._call("is_active")
        return self.active

    def metadata(self, namespace: str) -> str | None:
        self._call("metadata")
        return None

    def memory_bytes(self) -> int:
        self._call("memory")
        return 32 * 2**20


class FakeHost:
    """A libvirt connection's answers; ``calls`` counts each (a libvirt round trip or more)."""

    def __init__(self, uri: str, n: int = 0, running: int = 0, leased: int | None = None) -> None:
        self.uri, self.calls = uri, Counter[str]()
        lease = (f"<m:lease xmlns:m='{NS}' run='other' host='other-control-host' pid='1' pid-start='0' "
                 f"started='{time.time():.0f}' expires='{time.time() + 3600:.0f}' dest=''/>")
        self.guests = [FakeGuest(self, i, i < running, lease if i == leased else "") for i in range(n)]

    def __getattr__(self, name: str):
        answers = {"host_uuid": self.uri, "lib_version": 9_000_000, "hypervisor_version": 7_002_000,
                   "maintenance_marker": None, "domain_index": {}, "free_memory": 2**40,
                   "inbound_migration_memory": 0, "domain_capabilities": DOMCAPS,
                   "network_state": "active", "pool_state": "active", "secret_usages": {},
                   "capabilities": CAPS}
        if name not in answers:
            raise AttributeError(name)

        def call(*args, **kw):
            self.calls[name] += 1
            return answers[name]
        return call

    def close(self) -> None:
        pass

    def guests_by_state(self):
        self.calls["list domains"] += 3
        return [(g, g.active, True) for g in self.guests]

    def secret_info(self, u: str) -> SecretInfo | None:
        self.calls["secret_info"] += 1
        if self.guests:  # the source has every domain's secret, the destinations none
            return SecretInfo(uuid=u, usage_type="vtpm", usage_id=f"{u}-vtpm", ephemeral=False, private=False,
                              xml="<secret/>")
        return None


def plan(n: int, running: int = 0, leased: int | None = None):
    hosts = {SRC: FakeHost(SRC, n, running, leased), DST: FakeHost(DST), DST2: FakeHost(DST2)}
    p = plan_evacuation(SRC, [DST, DST2], EvacuationPolicy(include_inactive=True), MigrateOptions(),
                        connect=hosts.__getitem__)
    return p, hosts


@pytest.mark.parametrize("running", [0, 3])
def test_calls_are_constant_plus_k_per_domain_and_pair_checks_run_once_per_destination(running):
    (_, small), (p, large) = plan(10, running), plan(40, running)
    assert len(p.placed) == 40 and not any(p.blockers.values())
    for uri in (DST, DST2):
        # one secret look-up per domain; everything else once per destination, whatever the number of
        # domains and although live and offline migrations are both planned
        assert large[uri].calls - small[uri].calls == Counter(secret_info=30)
        assert large[uri].calls["maintenance_marker"] == 1  # a pair check (HOST-IN-MAINTENANCE)
        assert large[uri].calls["lib_version"] == large[uri].calls["hypervisor_version"] == 1
        assert large[uri].calls["domain_capabilities"] == large[uri].calls["domain_index"] == 1
        assert large[uri].calls["capabilities"] == 1
    src = large[SRC].calls
    # the source: per domain its XML (two definitions when running), its secret, and for a running
    # domain its status, job and memory — once for both destinations
    assert src - small[SRC].calls == Counter({"domain XML": 30, "secret_info": 30})
    assert (src["status"], src["job"], src["memory"]) == (running, running, running)
    assert src["is_active"] == src["metadata"] == 0  # the lease comes from the XML already read
    # LIBVIRT-VERSION and HYPERVISOR-VERSION (pair checks) once per destination; STORAGE-NOT-SHARED's rule
    # depends on both versions too, but these domains have no disk, so it does not ask them
    assert src["lib_version"] == src["hypervisor_version"] == 2


def test_every_domain_xml_is_parsed_once(monkeypatch):
    parsed: Counter[str] = Counter()
    real = ET.fromstring

    def counting(text, parser=None):
        parsed[text] += 1
        return real(text, parser)

    monkeypatch.setattr(ET, "fromstring", counting)
    _, hosts = plan(12, running=4)
    docs = [x for g in hosts[SRC].guests for x in ([g.xml, g.inactive_xml] if g.active else [g.inactive_xml])]
    assert len(docs) == 16 and {x: parsed[x] for x in docs} == dict.fromkeys(docs, 1)


def test_a_live_lease_in_the_domain_xml_blocks_that_domain_on_every_destination():
    p, hosts = plan(5, leased=2)
    assert {d: b for d, b in p.blockers.items() if b} == {
        "vm0002": {DST: ("DOMAIN-JOB-ACTIVE",), DST2: ("DOMAIN-JOB-ACTIVE",)}}
    assert {d.name for d in p.unplaceable} == {"vm0002"} and len(p.placed) == 4
    assert hosts[SRC].calls["metadata"] == 0


def test_a_pair_blocker_concerning_some_domains_applies_per_group_as_when_each_group_was_checked_alone():
    from types import SimpleNamespace

    from checks.registry import Finding, Report
    from coordinator.core.domain.facts import TpmFacts
    from coordinator.flows.evacuate import _blockers

    def target(name: str, tpm: bool) -> SimpleNamespace:
        return SimpleNamespace(name=name, facts=SimpleNamespace(tpms=(TpmFacts("tpm-crb", "emulator", "2.0"),)
                                                                 if tpm else ()))

    targets = [target("live-tpm", True), target("live-plain", False), target("off-plain", False)]
    live = {"live-tpm": True, "live-plain": True, "off-plain": False}
    report = Report(findings=(Finding("SWTPM-MISSING", "error", "fail", DST, "swtpm not found"),
                              Finding("HOST-IN-MAINTENANCE", "error", "fail", DST, "draining"),
                              Finding("DOMAIN-STATE", "error", "fail", "live-plain", "shut off")))
    assert _blockers(report, targets, live, DST) == {
        ("live-tpm", DST): ("HOST-IN-MAINTENANCE", "SWTPM-MISSING"),
        ("live-plain", DST): ("DOMAIN-STATE", "HOST-IN-MAINTENANCE", "SWTPM-MISSING"),
        ("off-plain", DST): ("HOST-IN-MAINTENANCE",)}  # no domain of its group has an emulated TPM
