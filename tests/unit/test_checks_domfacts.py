"""coordinator.domfacts (pure) and the pure decisions of the checks."""
from __future__ import annotations

import pytest

from checks.secrets import secret_check_id
from coordinator import domfacts
from coordinator.errors import BadInput
from coordinator.model import SecretAction, SecretKind, SecretPlan, SecretRef

DOM = """<domain type='kvm'>
  <name>vm1</name><uuid>ABCDEF00-0000-4000-8000-000000000001</uuid>
  <memory unit='GiB'>2</memory><currentMemory unit='MiB'>1536</currentMemory>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.qcow2'/><target dev='vda'/></disk>
    <disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vdb'/></disk>
    <disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/><readonly/></disk>
    <disk type='volume' device='disk'><source pool='fast' volume='v1'/><target dev='vdc'/></disk>
    <disk type='volume' device='disk'><source pool='fast' volume='v2'/><target dev='vdd'/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='p/i'/><target dev='vde'/></disk>
    <interface type='network'><source network='default'/></interface>
    <interface type='network'><source network='lab-net'/></interface>
    <interface type='network'><source network='default'/></interface>
    <interface type='bridge'><source bridge='br0'/></interface>
    <interface type='user'/>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'><encryption secret='x'/></backend></tpm>
  </devices>
</domain>"""


def test_parse_full_domain():
    f = domfacts.parse(DOM)
    assert (f.name, f.uuid, f.virt_type, f.arch, f.machine) == (
        "vm1", "abcdef00-0000-4000-8000-000000000001", "kvm", "x86_64", "pc-q35-7.2")
    assert f.emulator == "/usr/bin/qemu-system-x86_64"
    assert f.memory_kib == 1536 * 1024
    assert (f.cpu_mode, f.cpu_model) == ("custom", "qemu64") and f.cpu_xml.startswith("<cpu")
    assert f.tpms == (domfacts.TpmFacts("tpm-crb", "emulator", "2.0"),)
    assert f.networks == ("default", "lab-net") and f.bridges == ("br0",)
    assert f.pools == ("fast",)
    assert [(d.target, d.path) for d in f.local_disks] == [("vda", "/var/lib/libvirt/images/a.qcow2"),
                                                          ("vdb", "/dev/sdb")]


@pytest.mark.parametrize("xml, mode, mem", [
    ("<domain><name>a</name><memory>1024</memory></domain>", None, 1024),
    ("<domain><name>a</name><memory unit='b'>1048576</memory><cpu mode='host-model'/></domain>",
     "host-model", 1024),
    ("<domain><name>a</name><memory unit='M'>1</memory><cpu><model>Skylake</model></cpu></domain>",
     "custom", 1024),
    ("<domstatus><domain><name>a</name><memory unit='G'>1</memory><cpu mode='host-passthrough'/></domain>"
     "</domstatus>", "host-passthrough", 1024 * 1024),
])
def test_parse_table(xml, mode, mem):
    f = domfacts.parse(xml)
    assert (f.cpu_mode, f.memory_kib) == (mode, mem)
    assert f.tpms == () and f.networks == () and f.disks == ()


@pytest.mark.parametrize("xml", ["<domain", "<network/>", "<domstatus/>",
                                 "<domain><memory unit='parsec'>1</memory></domain>"])
def test_parse_rejects_bad_input(xml):
    with pytest.raises(BadInput):
        domfacts.parse(xml)


CAPS = """<domainCapabilities><devices><tpm supported='yes'>
  <enum name='model'><value>tpm-tis</value><value>tpm-crb</value></enum>
  <enum name='backendModel'><value>passthrough</value><value>emulator</value></enum>
  <enum name='backendVersion'><value>1.2</value><value>2.0</value></enum>
</tpm></devices><cpu><mode name='host-model' supported='yes'><model fallback='forbid'>kvm64</model>
<vendor>Intel</vendor><feature policy='require' name='vme'/></mode></cpu></domainCapabilities>"""
T = domfacts.TpmFacts


@pytest.mark.parametrize("caps, tpms, problems", [
    (CAPS, (T("tpm-crb", "emulator", "2.0"),), []),
    (CAPS, (), []),
    (CAPS, (T("tpm-spapr", "emulator", "2.0"),), ["TPM model 'tpm-spapr' not offered"]),
    (CAPS.replace("<value>emulator</value>", ""), (T("tpm-crb", "emulator", "2.0"),),
     ["TPM backend 'emulator' not offered"]),
    (CAPS.replace("<value>2.0</value>", ""), (T("tpm-crb", "emulator", "2.0"),), ["TPM version 2.0 not offered"]),
    (CAPS.replace("<enum name='backendVersion'><value>1.2</value><value>2.0</value></enum>", ""),
     (T("tpm-crb", "emulator", "2.0"),), []),  # older libvirt: no version enum, nothing to say
    (CAPS.replace("supported='yes'>\n  <enum", "supported='no'>\n  <enum"), (T("tpm-crb", "emulator", "2.0"),),
     ["the destination offers no TPM devices"]),
    ("<domainCapabilities/>", (T("tpm-crb", "emulator", "2.0"),), ["the destination offers no TPM devices"]),
])
def test_tpm_problems(caps, tpms, problems):
    got = domfacts.tpm_problems(tpms, domfacts.parse_tpm_caps(caps))
    assert len(got) == len(problems) and all(g.startswith(p) for g, p in zip(got, problems))


def test_host_model_cpu():
    ok, xml = domfacts.host_model_cpu(CAPS)
    assert ok and xml.startswith("<cpu mode=\"custom\"") and "kvm64" in xml and "vme" in xml
    assert domfacts.host_model_cpu("<domainCapabilities/>") == (False, None)


def test_version_str():
    assert domfacts.version_str(9_000_000) == "9.0.0" and domfacts.version_str(7_002_022) == "7.2.22"


REF = SecretRef(uuid="u", usage_type="vtpm", kind=SecretKind.VTPM, location="/domain/devices/tpm[1]")


@pytest.mark.parametrize("action, src, dst, expected", [
    (SecretAction.BLOCK, "missing", "unknown", "SECRET-MISSING-ON-SOURCE"),
    (SecretAction.BLOCK, "readable, usage volume", "unknown", "SECRET-USAGE-MISMATCH"),
    (SecretAction.BLOCK, "readable", "usage-mismatch", "SECRET-USAGE-MISMATCH"),
    (SecretAction.BLOCK, "readable", "value-mismatch", "SECRET-VALUE-MISMATCH"),
    (SecretAction.BLOCK, "private", "private-mismatch", "SECRET-FLAGS-MISMATCH"),
    (SecretAction.BLOCK, "readable", "ephemeral-mismatch", "SECRET-FLAGS-MISMATCH"),
    (SecretAction.BLOCK, "private", "missing", "SECRET-NO-VALUE-SOURCE"),
    (SecretAction.REUSE, "private", "unverifiable", "SECRET-UNVERIFIABLE"),
    (SecretAction.RESET_VALUE, "private", "unverifiable", None),
    (SecretAction.REUSE, "readable", "match", None),
    (SecretAction.PROVISION, "readable", "missing", None),
    # gone from the source: the destination copy decides (libvirt needs nothing else)
    (SecretAction.BLOCK, "missing", "missing", "SECRET-MISSING-ON-SOURCE"),
    (SecretAction.BLOCK, "missing", "value-mismatch", "SECRET-VALUE-MISMATCH"),
    (SecretAction.BLOCK, "missing", "usage-mismatch", "SECRET-USAGE-MISMATCH"),
    (SecretAction.REUSE, "missing", "unverifiable", "SECRET-UNVERIFIABLE"),
    (SecretAction.REUSE, "missing", "match", None),
])
def test_secret_check_id(action, src, dst, expected):
    assert secret_check_id(SecretPlan(REF, "u", action, src, dst)) == expected


@pytest.mark.parametrize("src, dst, allow, status", [
    ("qemu+tcp://127.0.0.41/system", "qemu+tcp://127.0.0.42/system", False, "pass"),
    ("qemu:///system", "qemu+ssh://hv2/system", False, "pass"),
    ("qemu:///system", "qemu+tcp://hv2.example/system", False, "fail"),
    ("qemu:///system", "qemu+tcp://hv2.example/system", True, "pass"),
])
def test_plaintext_transport_check(src, dst, allow, status):
    from types import SimpleNamespace

    from checks.hosts import plaintext_transport
    from coordinator.secrets import SecretPolicy
    r = plaintext_transport(SimpleNamespace(src_uri=src, dst_uri=dst,
                                            secret_policy=SecretPolicy(allow_plaintext=allow)))
    assert r.status == status
