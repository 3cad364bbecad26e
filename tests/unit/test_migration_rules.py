"""coordinator.core.migration_rules: libvirt's rules as tables of cases (the lab proves them: test_verdict_matrix)."""
from __future__ import annotations

import pytest

from coordinator.core import migration_rules as r
from coordinator.core.migration_rules import CpuTest, Disk, RulingOutcome

OK, REFUSE, UNKNOWN = RulingOutcome.OK, RulingOutcome.REFUSE, RulingOutcome.UNKNOWN


@pytest.mark.parametrize("mode, check, has_model, live, want", [
    (None, None, False, False, CpuTest.NOTHING),                 # no <cpu>: stored as qemu64 check='none'
    (None, None, False, True, CpuTest.NOTHING),
    ("custom", "none", True, False, CpuTest.NOTHING),
    ("custom", None, False, False, CpuTest.NOTHING),             # topology only
    ("custom", None, True, False, CpuTest.COMPARE),              # default check for custom: partial
    ("custom", "partial", True, False, CpuTest.COMPARE),
    ("custom", "partial", True, True, CpuTest.COMPARE),
    ("custom", "full", True, False, CpuTest.EXACT),              # fresh start: extra features fail too
    ("custom", "full", True, True, CpuTest.COMPARE),             # live XML lists every feature
    ("host-model", None, False, False, CpuTest.MODE),
    ("host-model", "partial", False, False, CpuTest.MODE),
    ("host-passthrough", "none", False, True, CpuTest.MODE),
    ("maximum", None, False, False, CpuTest.MODE),
])
def test_cpu_test(mode, check, has_model, live, want):
    assert r.cpu_test(mode, check, has_model, live_definition=live) is want


@pytest.mark.parametrize("test, mode, supported, compare, want", [
    (CpuTest.NOTHING, None, None, None, OK),
    (CpuTest.NOTHING, "custom", None, "incompatible", OK),       # a compare answer is not the rule
    (CpuTest.MODE, "host-model", True, None, OK),
    (CpuTest.MODE, "host-model", False, None, REFUSE),
    (CpuTest.MODE, "maximum", None, None, UNKNOWN),
    (CpuTest.MODE, "host-passthrough", True, "incompatible", OK),  # libvirt does not compare passthrough
    (CpuTest.COMPARE, "custom", None, "identical", OK),
    (CpuTest.COMPARE, "custom", None, "superset", OK),
    (CpuTest.COMPARE, "custom", None, "incompatible", REFUSE),
    (CpuTest.COMPARE, "custom", None, None, UNKNOWN),
    (CpuTest.EXACT, "custom", None, "incompatible", REFUSE),
    (CpuTest.EXACT, "custom", None, "superset", UNKNOWN),
])
def test_cpu_ruling(test, mode, supported, compare, want):
    got = r.cpu_ruling(test, mode=mode, mode_supported=supported, compare=compare)
    assert got.outcome is want, got.reason
    assert got.reason


@pytest.mark.parametrize("test, compare, unlisted, want", [
    (CpuTest.EXACT, "superset", True, REFUSE),       # qemu64 check='full' under TCG: "extra features: hypervisor"
    (CpuTest.EXACT, None, True, REFUSE),             # fails at start whatever the compare could say
    (CpuTest.EXACT, "superset", False, UNKNOWN),     # listed: other features QEMU adds may still fail it
    (CpuTest.EXACT, "incompatible", False, REFUSE),
    (CpuTest.COMPARE, "superset", True, OK),         # check='partial' never looks for extra features
    (CpuTest.NOTHING, None, True, OK),
])
def test_cpu_ruling_full_check_and_the_hypervisor_bit(test, compare, unlisted, want):
    got = r.cpu_ruling(test, mode="custom", mode_supported=None, compare=compare, hypervisor_unlisted=unlisted)
    assert got.outcome is want, got.reason
    if want is REFUSE and unlisted:
        assert "hypervisor" in got.reason and "policy='require'" in got.reason


@pytest.mark.parametrize("cpu, arch, want", [
    ("<cpu mode='custom' check='full'><model>qemu64</model></cpu>", "x86_64", True),
    ("<cpu mode='custom' check='full'><model>qemu64</model><feature policy='require' name='hypervisor'/></cpu>",
     "x86_64", False),
    ("<cpu mode='custom' check='full'><model>qemu64</model><feature policy='disable' name='hypervisor'/></cpu>",
     "i686", False),
    ("<cpu mode='custom'><model>cortex-a57</model></cpu>", "aarch64", False),   # the rule is x86's
    (None, "x86_64", False),
])
def test_x86_hypervisor_unlisted(cpu, arch, want):
    """From a domain XML's <cpu> as core.domain.facts reads it (the features from the one parse)."""
    from coordinator.core.domain.facts import parse_domain_facts

    xml = f"<domain type='kvm'><name>v</name><os><type arch='{arch}'>hvm</type></os>{cpu or ''}</domain>"
    facts = parse_domain_facts(xml)
    assert r.x86_hypervisor_unlisted(facts.cpu_features, facts.arch) is want


DOMCAPS = ("<domainCapabilities><cpu><mode name='host-passthrough' supported='yes'/>"
           "<mode name='host-model' supported='no'/></cpu></domainCapabilities>")


@pytest.mark.parametrize("mode, want", [("host-passthrough", True), ("host-model", False), ("maximum", None)])
def test_cpu_mode_supported(mode, want):
    assert r.cpu_mode_supported(DOMCAPS, mode) is want


def disk(kind="file", path="/var/lib/libvirt/images/a.qcow2", **kw) -> Disk:
    return Disk(target="vda", actual_type=kind, path=path, **kw)


NEW_QEMU, OLD_QEMU = 7_002_000, 3_001_000


@pytest.mark.parametrize("d, copy, fs, qemu, want", [
    (disk(), False, "ext2/ext3", NEW_QEMU, REFUSE),                       # local FS: unsafe
    (disk(), False, "xfs", NEW_QEMU, REFUSE),
    (disk(), False, None, NEW_QEMU, UNKNOWN),                             # no SSH: cannot stat -f
    (disk(), True, "ext2/ext3", NEW_QEMU, OK),                            # copied by --copy-storage
    (disk(), False, "nfs", NEW_QEMU, OK),
    (disk(cache="writeback"), False, "nfs", OLD_QEMU, REFUSE),            # cache rule before drop-cache
    (disk(cache="none"), False, "nfs", OLD_QEMU, OK),
    (disk(cache="directsync"), False, "nfs", OLD_QEMU, OK),
    (disk(cache="writeback"), False, "gfs/gfs2", OLD_QEMU, OK),               # cluster FS
    (disk(cache="writeback"), False, "nfs", NEW_QEMU, OK),                # QEMU ≥ 4.0 drops caches
    (disk(readonly=True), False, "ext2/ext3", NEW_QEMU, OK),
    (disk(path=None), False, None, NEW_QEMU, OK),                         # empty CD-ROM
    (disk(shareable=True), True, "ext2/ext3", NEW_QEMU, REFUSE),          # shareable is never copied
    (disk(shareable=True), False, "nfs", OLD_QEMU, OK),
    (disk("network", path="pool/img"), False, None, NEW_QEMU, OK),
    (disk("nvme", path="0000:01:00.0"), False, None, NEW_QEMU, REFUSE),
    (disk("block", path="/dev/sdb"), False, None, NEW_QEMU, OK),          # block: only the cache rule
    (disk("block", path="/dev/sdb", cache="writeback"), False, None, OLD_QEMU, REFUSE),
])
def test_unsafe_ruling(d, copy, fs, qemu, want):
    got = r.unsafe_ruling(d, copy_storage=copy, fs_type=fs, qemu_version=qemu, libvirt_version=9_000_000)
    assert got.outcome is want, got.reason


@pytest.mark.parametrize("d, live, copy, exists, pool, want", [
    (disk(), False, False, False, None, OK),                   # offline: nothing opened there
    (disk(), True, False, True, None, OK),
    (disk(), True, False, False, None, REFUSE),                # the destination QEMU cannot open it
    (disk(), True, False, None, None, UNKNOWN),
    (disk(readonly=True), True, True, False, None, REFUSE),    # read-only: not copied, must exist
    (disk(), True, True, False, True, OK),                     # pre-created in the covering pool
    (disk(), True, True, False, False, REFUSE),                # Storage pool not found
    (disk(), True, True, True, False, OK),                     # an existing image is used as it is
    (disk(), True, True, None, False, UNKNOWN),
    (disk("block", path="/dev/sdb"), True, True, False, True, REFUSE),  # block disks are never pre-created
    (disk(path=None), True, False, None, None, OK),
    (disk("network", path="pool/img"), True, False, None, None, OK),
])
def test_dest_ruling(d, live, copy, exists, pool, want):
    got = r.dest_ruling(d, live=live, copy_storage=copy, exists_on_dst=exists, dst_pool_covers=pool)
    assert got.outcome is want, got.reason


@pytest.mark.parametrize("state, live, want", [
    ("running", True, OK), ("paused", True, OK), ("shutoff", True, REFUSE), ("crashed", True, REFUSE),
    ("shutoff", False, OK), ("running", False, OK),             # offline copies the definition
])
def test_state_ruling(state, live, want):
    assert r.state_ruling(state, live=live).outcome is want


@pytest.mark.parametrize("name, uuid, active, want", [
    (False, False, False, OK), (True, False, False, REFUSE), (False, True, False, REFUSE),
    (True, True, False, OK), (True, True, True, REFUSE),
])
def test_clash_ruling(name, uuid, active, want):
    assert r.clash_ruling(name_match=name, uuid_match=uuid, dst_active=active).outcome is want


@pytest.mark.parametrize("by_uuid, want_type, dst_type, dst_id, want_id, want", [
    (True, "vtpm", "vtpm", "a", "a", OK),
    (True, "vtpm", "vtpm", "other", "a", OK),                 # looked up by UUID: the name is not checked
    (True, "vtpm", "volume", "/x", "a", REFUSE),              # the type is
    (False, "volume", "volume", "/other", "/x", REFUSE),      # looked up by usage: the id matters
    (False, "volume", "volume", "/x", "/x", OK),
])
def test_secret_usage_ruling(by_uuid, want_type, dst_type, dst_id, want_id, want):
    got = r.secret_usage_ruling(by_uuid=by_uuid, want_type=want_type, dst_type=dst_type, dst_id=dst_id,
                                want_id=want_id)
    assert got.outcome is want


@pytest.mark.parametrize("fs, libvirt, shared", [
    ("nfs", 9_000_000, True), ("gfs/gfs2", 9_000_000, True), ("ocfs2", 9_000_000, True), ("ceph", 9_000_000, True),
    ("cifs", 9_000_000, True), ("smb", 9_000_000, True), ("acfs", 9_000_000, True), ("gpfs", 9_000_000, True),
    ("fuse.glusterfs", 9_000_000, True), ("fuse.quobyte", 9_000_000, True),
    # BeeGFS (stat: "fhgfs") from libvirt 9.6.0; not SMB2's own magic, not Lustre (virfile.c 9.0 and 11.3)
    ("fhgfs", 9_000_000, False), ("fhgfs", 9_006_000, True), ("fhgfs", 11_003_000, True),
    ("smb2", 11_003_000, False), ("lustre", 11_003_000, False), ("nfs4", 9_000_000, False),
    ("ext2/ext3", 9_000_000, False), ("tmpfs", 11_003_000, False), ("xfs", 9_000_000, False),
    ("fuseblk", 9_000_000, None), ("fuse", 11_003_000, None),  # which FUSE filesystem: stat does not say
])
def test_which_filesystems_libvirt_counts_as_shared(fs, libvirt, shared):
    assert r.fs_is_shared(fs, libvirt) is shared


def test_a_disk_on_a_fuse_mount_of_unknown_kind_is_unknown_not_refused():
    d = r.Disk("vda", "file", "/mnt/gluster/a.qcow2")
    got = r.unsafe_ruling(d, copy_storage=False, fs_type="fuseblk", qemu_version=7_002_000,
                          libvirt_version=9_000_000)
    assert got.outcome is r.RulingOutcome.UNKNOWN and "GlusterFS" in got.reason


def test_needs_active_object():
    assert r.needs_active_object(live=True) and not r.needs_active_object(live=False)


def test_no_libvirt_import():
    import ast
    import pathlib
    tree = ast.parse(pathlib.Path(r.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in names if m and m.split(".")[0] in ("libvirt", "paramiko")}


@pytest.mark.parametrize("virt_type, compared_with", [("kvm", ("host", "hypervisor")), ("qemu", ("hypervisor",))])
def test_a_checked_cpu_is_compared_with_the_cpus_of_its_virt_type(virt_type, compared_with):
    assert r.cpu_compared_with(virt_type) == compared_with


@pytest.mark.parametrize("answers, want", [
    ([], (None, "")),
    # libvirt 11.3, nested KVM on AMD: the raw CPUID lacks what KVM offers; the migration succeeds
    ([("incompatible", "missing: overflow-recov, succor"), ("superset", "")], ("superset", "")),
    # libvirt 9.0: kvm64 starts although QEMU's host-model does not cover it
    ([("identical", ""), ("incompatible", "missing: x")], ("identical", "")),
    ([("incompatible", "a"), ("incompatible", "b")], ("incompatible", "a; b")),
    ([("incompatible", "a"), ("incompatible", "a")], ("incompatible", "a")),
    ([("incompatible", "unknown CPU feature: succor")], ("incompatible", "unknown CPU feature: succor")),
])
def test_a_cpu_fits_when_either_comparison_says_so(answers, want):
    assert r.either_compare(answers) == want


CAPS_72 = ("<capabilities><guest><arch name='x86_64'><emulator>/usr/bin/qemu-system-x86_64</emulator>"
           "<machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine><machine maxCpus='288'>pc-q35-7.2</machine>"
           "<machine>pc-i440fx-7.2</machine><domain type='kvm'/></arch></guest>"
           "<guest><arch name='i686'><machine>pc-q35-10.0</machine></arch></guest></capabilities>")


def test_machine_types_lists_names_and_canonical_aliases_of_the_arch():
    assert r.machine_types(CAPS_72, "x86_64") == {"q35", "pc-q35-7.2", "pc-i440fx-7.2"}
    assert r.machine_types(CAPS_72, "aarch64") == frozenset()


@pytest.mark.parametrize("machine, live, want", [
    ("pc-q35-7.2", True, "ok"),
    ("q35", True, "ok"),
    (None, True, "ok"),
    # trixie → bookworm, measured: a guest QEMU 10 started as pc-q35-10.0 is refused by QEMU 7.2
    ("pc-q35-10.0", True, "refuse"),
    ("pc-q35-10.0", False, "refuse"),   # offline: copied, but it would not start there
])
def test_machine_ruling(machine, live, want):
    known = r.machine_types(CAPS_72, "x86_64")
    assert r.machine_ruling(machine, known, live=live).outcome == want
    assert r.machine_ruling("pc-q35-7.2", frozenset(), live=True).outcome == "unknown"
