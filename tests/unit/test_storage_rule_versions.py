"""STORAGE-NOT-SHARED asks the source's libvirt and QEMU versions only when a disk needs its rule (the rule
depends on both, e.g. cache modes before QEMU 4.0): a diskless domain costs no call, one with a disk is judged."""
from __future__ import annotations

from collections import Counter

from check_fakes import DST, SRC, StubHost, context, target

from checks import resources

DISK = "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.qcow2'/><target dev='vda'/></disk>"


def _hosts(asked: Counter[str]) -> tuple[StubHost, StubHost]:
    def lib_version() -> int:
        asked["lib"] += 1
        return 9_000_000

    def hypervisor_version() -> int:
        asked["qemu"] += 1
        return 7_002_000
    return StubHost(SRC, lib_version=lib_version, hypervisor_version=hypervisor_version), StubHost(DST)


def test_a_diskless_domain_passes_without_asking_the_versions():
    asked: Counter[str] = Counter()
    src, dst = _hosts(asked)
    t = target("vm1")
    result = resources.storage_shared(context([t], src=src, dst=dst), t)
    assert [r.status for r in (result if isinstance(result, list) else [result])] == ["pass"]
    assert asked == Counter()


def test_a_file_disk_is_judged_with_the_source_versions():
    asked: Counter[str] = Counter()
    src, dst = _hosts(asked)
    t = target("vm1", DISK)
    result = resources.storage_shared(context([t], src=src, dst=dst), t)
    results = result if isinstance(result, list) else [result]
    # Without SSH the filesystem under the disk is not known: an honest unknown, never a pass.
    assert [r.status for r in results] == ["unknown"] and "vda" in results[0].message
    assert asked == Counter({"lib": 1, "qemu": 1})
