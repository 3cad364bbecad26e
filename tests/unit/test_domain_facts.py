"""coordinator.core.domain.facts: the facts of a domain XML and of domain capabilities (pure)."""
from __future__ import annotations

import pytest

from coordinator.core.domain.facts import TpmFacts, parse_domain_facts, parse_tpm_caps, tpm_problems
from coordinator.core.errors import BadInput

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
    f = parse_domain_facts(DOM)
    assert (f.name, f.uuid, f.virt_type, f.arch, f.machine) == (
        "vm1", "abcdef00-0000-4000-8000-000000000001", "kvm", "x86_64", "pc-q35-7.2")
    assert f.emulator == "/usr/bin/qemu-system-x86_64"
    assert f.memory_kib == 1536 * 1024
    assert (f.cpu_mode, f.cpu_model) == ("custom", "qemu64") and f.cpu_xml.startswith("<cpu")
    assert f.tpms == (TpmFacts("tpm-crb", "emulator", "2.0"),)
    assert f.networks == ("default", "lab-net") and f.bridges == ("br0",)
    assert f.pools == ("fast",)
    assert [(d.target, d.type, d.device, d.path, d.pool, d.volume, d.readonly) for d in f.disks] == [
        ("vda", "file", "disk", "/var/lib/libvirt/images/a.qcow2", None, None, False),
        ("vdb", "block", "disk", "/dev/sdb", None, None, False),
        ("sda", "file", "cdrom", "/iso/x.iso", None, None, True),
        ("vdc", "volume", "disk", None, "fast", "v1", False),
        ("vdd", "volume", "disk", None, "fast", "v2", False),
        ("vde", "network", "disk", None, None, None, False)]


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
    f = parse_domain_facts(xml)
    assert (f.cpu_mode, f.memory_kib) == (mode, mem)
    assert f.tpms == () and f.networks == () and f.disks == ()


@pytest.mark.parametrize("xml", ["<domain", "<network/>", "<domstatus/>",
                                 "<domain><memory unit='parsec'>1</memory></domain>"])
def test_parse_rejects_bad_input(xml):
    with pytest.raises(BadInput):
        parse_domain_facts(xml)


CAPS = """<domainCapabilities><devices><tpm supported='yes'>
  <enum name='model'><value>tpm-tis</value><value>tpm-crb</value></enum>
  <enum name='backendModel'><value>passthrough</value><value>emulator</value></enum>
  <enum name='backendVersion'><value>1.2</value><value>2.0</value></enum>
</tpm></devices><cpu><mode name='host-model' supported='yes'><model fallback='forbid'>kvm64</model>
<vendor>Intel</vendor><feature policy='require' name='vme'/></mode></cpu></domainCapabilities>"""
T = TpmFacts


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
    got = tpm_problems(tpms, parse_tpm_caps(caps))
    assert len(got) == len(problems) and all(g.startswith(p) for g, p in zip(got, problems, strict=True))

