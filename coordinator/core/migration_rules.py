"""Pure: libvirt's own rules for whether it will accept a migration (and whether the guest runs there).

House rule 13: a check's verdict mirrors libvirt's rule — not stricter, not looser. Each function here
restates one rule of libvirt 9.0 (Debian 12, the lab) as a function of plain values, with where it lives
in libvirt's source; where a newer libvirt differs, the 9.0 behaviour is kept and the NOTE says so.
No libvirt import, no I/O: the checks gather the facts (libvirt API, SSH) and call these.

An outcome is ``OK`` (libvirt accepts), ``REFUSE`` (libvirt refuses or the migration/start fails) or
``UNKNOWN`` (it depends on a fact the tool could not learn; the reason says which and how to learn it).
"""
from __future__ import annotations

import enum
import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass


class RulingOutcome(enum.StrEnum):
    OK = "ok"
    REFUSE = "refuse"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Ruling:
    outcome: RulingOutcome
    reason: str

    @property
    def refused(self) -> bool:
        return self.outcome is RulingOutcome.REFUSE


def ok(reason: str) -> Ruling:
    return Ruling(RulingOutcome.OK, reason)


def refuse(reason: str) -> Ruling:
    return Ruling(RulingOutcome.REFUSE, reason)


def unknown(reason: str) -> Ruling:
    return Ruling(RulingOutcome.UNKNOWN, reason)


# ------------------------------------------------------------------ CPU

class CpuTest(enum.StrEnum):
    """What libvirt checks about a guest CPU definition when it starts QEMU with it
    (qemu_process.c qemuProcessUpdateGuestCPU / qemuProcessVerifyCPU)."""

    NOTHING = "nothing"        # no <cpu>, topology only, or check='none': QEMU starts with what it can give
    MODE = "mode"              # host-model / host-passthrough / maximum: the mode must be supported there
    COMPARE = "compare"        # check='partial' (the default for custom): virCPUCompare with the host CPU
    EXACT = "exact"            # check='full' on a fresh start: after QEMU starts, its CPU must match exactly


def cpu_compared_with(virt_type: str) -> tuple[str, ...]:
    """Which of libvirt's two CPU comparisons answer, together, what the destination's start applies to a
    checked guest CPU: "host" (virConnectCompareCPU: the host's raw CPUID) and/or "hypervisor"
    (virConnectCompareHypervisorCPU: the CPU QEMU offers for that virt type, its host-model).

    KVM: both. A fresh check='partial' start compares with HOST_CPU_FULL, which is the raw CPUID *plus*
    every feature of QEMU's host-model (virQEMUCapsInitHostCPUModel; qemuProcessUpdateGuestCPU with
    virCPUCompare in libvirt 9.0, qemuDomainCheckCPU in 11.3). A live migration's destination starts QEMU
    with the live check='full' CPU and compares nothing before; after the start virCPUx86UpdateLive asks
    whether KVM gave every required feature — what QEMU's host-model tells (same in 9.0 and 11.3). Neither
    API alone is the rule: on libvirt 9.0 compareHypervisorCPU calls kvm64 incompatible on a host where it
    starts, and on 11.3 (nested KVM on AMD) compareCPU calls a live EPYC-Milan CPU incompatible
    ("overflow-recov, succor": KVM offers them, the raw CPUID lacks them) while the migration succeeds.
    TCG ('qemu'): only "hypervisor" — its guests never run on the host CPU."""
    return ("host", "hypervisor") if virt_type == "kvm" else ("hypervisor",)


def either_compare(answers: list[tuple[str, str]]) -> tuple[str | None, str]:
    """Pure: the comparisons of ``cpu_compared_with`` as one answer. The CPU fits when any of them says it
    does (the start's host CPU is their union); it is incompatible only when all say so (their reasons
    joined); None when none answered."""
    if not answers:
        return None, ""
    for result, detail in answers:
        if result in ("identical", "superset"):
            return result, detail
    return "incompatible", "; ".join(dict.fromkeys(d for _, d in answers if d))


def cpu_test(mode: str | None, check: str | None, has_model: bool, *, live_definition: bool) -> CpuTest:
    """Pure: which test libvirt applies to this <cpu> when QEMU is started with it.

    ``live_definition``: the definition is a running guest's live XML (what the destination QEMU of a live
    migration is started with). libvirt writes a live CPU as mode='custom' check='full' listing every
    feature QEMU enabled or disabled, so 'full' then means "the destination provides these features":
    the compare answers it. On a fresh start (offline migration, then start) check='full' also fails when
    QEMU adds features the definition does not list — only a start can tell (EXACT).

    NOTE: the default ``check`` (attribute absent) is 'partial' for custom and host-model and 'none' for
    host-passthrough/maximum (qemuDomainDefCPUPostParse); a domain defined without <cpu> is stored as
    qemu64 with check='none' — which is why comparing it (incompatible on an AMD host: no svm) is not the rule.
    """
    if mode is None:
        return CpuTest.NOTHING
    if mode in ("host-passthrough", "maximum", "host-model"):
        return CpuTest.MODE
    if not has_model or check == "none":
        return CpuTest.NOTHING
    if check == "full" and not live_definition:
        return CpuTest.EXACT
    return CpuTest.COMPARE


def cpu_ruling(test: CpuTest, *, mode: str | None, mode_supported: bool | None, compare: str | None,
               detail: str = "", hypervisor_unlisted: bool = False) -> Ruling:
    """Pure: the outcome of ``test`` given the destination's answers (``mode_supported`` from its domain
    capabilities, ``compare`` from virConnectCompareHypervisorCPU: identical | superset | incompatible).

    ``hypervisor_unlisted``: an x86 definition that does not mention the ``hypervisor`` feature at all
    (``x86_hypervisor_unlisted``). For EXACT that alone fails the start, whatever the compare says."""
    if test is CpuTest.NOTHING:
        return ok("libvirt checks nothing for this CPU definition (no <cpu>, topology only or check='none')")
    if test is CpuTest.MODE:
        if mode_supported is None:
            return unknown(f"the destination did not say whether it supports CPU mode {mode}")
        if not mode_supported:
            return refuse(f"the destination does not support CPU mode {mode} (virQEMUCapsIsCPUModeSupported)")
        extra = " (libvirt does not compare a host-passthrough CPU across hosts)" \
            if mode in ("host-passthrough", "maximum") else ""
        return ok(f"{mode}: supported by the destination{extra}")
    if test is CpuTest.EXACT and hypervisor_unlisted:
        return refuse("check='full' fails this start with 'extra features: hypervisor': QEMU sets the hypervisor "
                      "bit on every x86 guest CPU and no libvirt CPU model lists it; add <feature "
                      "policy='require' name='hypervisor'/> (or use check='partial')")
    if compare is None:
        return unknown("the destination could not compare the CPU")
    if compare == "incompatible":
        return refuse("incompatible with the destination's host CPU" + (f": {detail}" if detail else ""))
    if test is CpuTest.EXACT:
        return unknown(f"{compare} on the destination, but check='full' also fails a start when QEMU gives "
                       "features the definition does not list; only starting it there can tell")
    return ok(f"{compare} on the destination")


def x86_hypervisor_unlisted(cpu_features: tuple[str, ...] | None, arch: str | None) -> bool:
    """Pure: an x86 guest <cpu> (its <feature> names, any policy; None: no <cpu>) that names no
    ``hypervisor`` feature.

    NOTE: QEMU turns the hypervisor CPUID bit on for every x86 CPU model (target/i386/cpu.c
    x86_cpu_load_model) unless told ``-hypervisor``, and none of libvirt 9.0's x86 models in cpu_map/
    lists it (only x86_features.xml defines it). So at a fresh start with check='full' libvirt's
    virCPUx86UpdateLive always finds it "extra" — unless the definition requires or disables it. Seen on
    the lab under KVM and TCG: qemu64 check='full' → "extra features: hypervisor,…"; with
    <feature policy='require' name='hypervisor'/> (and TCG's lahf_lm) it starts, and with policy='disable' too."""
    if cpu_features is None or arch not in ("x86_64", "i686"):
        return False
    return "hypervisor" not in cpu_features


# NOTE: one capabilities document serves every domain of a run: parse it once, not per domain.
@functools.lru_cache(maxsize=32)
def cpu_mode_supported(domcaps_xml: str, mode: str) -> bool | None:
    """Pure: ``<cpu><mode name=MODE supported='yes|no'>`` of virConnectGetDomainCapabilities (None: not
    listed, e.g. 'maximum' before libvirt 7.9)."""
    el = ET.fromstring(domcaps_xml).find(f"cpu/mode[@name='{mode}']")
    return None if el is None else el.get("supported") == "yes"


# ------------------------------------------------------------------ machine type

# NOTE: one capabilities document serves every domain of a run: parse it once, not per domain.
@functools.lru_cache(maxsize=32)
def machine_types(caps_xml: str, arch: str) -> frozenset[str]:
    """Pure: every machine type (and alias, e.g. ``q35`` for its canonical ``pc-q35-10.0``) that
    virConnectGetCapabilities lists for ``arch``, over all its emulators and domain types."""
    names: set[str] = set()
    for guest in ET.fromstring(caps_xml).findall("guest"):
        a = guest.find("arch")
        if a is None or a.get("name") != arch:
            continue
        for m in a.iter("machine"):
            if m.text:
                names.add(m.text.strip())
            if m.get("canonical"):
                names.add(str(m.get("canonical")))
    return frozenset(names)


def machine_ruling(machine: str | None, known: frozenset[str], *, live: bool) -> Ruling:
    """Whether the destination's QEMU knows the domain's machine type (qemuValidateDomainDef: "Emulator
    '...' does not support machine type '...'"; libvirt 9.0 at QEMU's start, 11.3 already while preparing
    the incoming migration). The case of a rolling upgrade: a guest started on QEMU 10 runs pc-q35-10.0,
    which QEMU 7.2 does not know — it can go back only when pinned to a machine type both know (measured
    on the lab, trixie → bookworm). An offline migration only defines the domain, whatever its machine
    (measured: defined; its start then fails): offline this judges whether it would start there, as the CPU
    rule does."""
    if not machine:
        return ok("no machine type in the definition: the destination's default")
    if not known:
        return unknown("the destination lists no machine types for this architecture")
    if machine in known:
        return ok(f"the destination's QEMU knows machine type {machine}")
    what = "the migration fails" if live else "the definition is copied, but the domain cannot start there"
    return refuse(f"the destination's QEMU does not know machine type {machine}: {what} (pin a machine type "
                  "both hosts know, e.g. the older host's, in the persistent definition)")


# ------------------------------------------------------------------ storage

# virFileIsSharedFS (util/virfile.c virFileSharedFsMagic + virFileSharedFsFUSE, read in 9.0.0 and 11.3.0): the
# filesystems libvirt counts as shared storage, as GNU `stat -f -c %T` names their magic numbers (coreutils 9.1
# and 9.5), each with the first libvirt release that counts it (0: every release we support). BeeGFS, which
# stat calls "fhgfs", from 9.6.0 (NEWS.rst). SMB2's own magic ("smb2") and Lustre are not in the list.
# The one definition of this rule (tests/unit/test_one_definition.py).
SHARED_FS_SINCE: dict[str, int] = {"nfs": 0, "gfs/gfs2": 0, "ocfs2": 0, "afs": 0, "smb": 0, "cifs": 0,
                                   "ceph": 0, "gpfs": 0, "acfs": 0, "fhgfs": 9_006_000}
# A FUSE mount counts only when its mount type is fuse.glusterfs or fuse.quobyte (/proc/mounts), which stat's
# name ("fuseblk" in coreutils 9.1, "fuse" in 9.5) does not tell.
FUSE_FS = ("fuseblk", "fuse")
SHARED_FUSE = ("fuse.glusterfs", "fuse.quobyte")
# virFileIsClusterFS (same releases): GFS2, OCFS2, CephFS and GlusterFS are coherent whatever the cache mode.
CLUSTER_FS = ("gfs/gfs2", "ocfs2", "ceph", "fuse.glusterfs")
# libvirt's default emulator TPM state directory (system daemon): swtpm/<domain uuid>/ under it (formatdomain,
# tpm), unless the domain names its own <backend><source path>.
TPM_STATE_ROOT = "/var/lib/libvirt/swtpm"
# NOTE: libvirt 11.3 also counts the directories qemu.conf lists in shared_filesystems (absent in 9.0): a
# host-local setting this rule cannot see.
DROP_CACHE_QEMU = 4_000_000  # QEMU 4.0: blockdev-add file 'drop-cache' (QEMU_CAPS_MIGRATION_FILE_DROP_CACHE)
SAFE_CACHE = ("none", "directsync")


def fs_is_shared(fs_type: str, libvirt_version: int) -> bool | None:
    """Pure: whether libvirt ``libvirt_version`` counts a filesystem of this type (`stat -f -c %T`, or a
    /proc/mounts FUSE type) as shared storage; None for a FUSE mount of unknown kind."""
    t = fs_type.strip().lower()
    if t in SHARED_FUSE:
        return True
    if t in FUSE_FS:
        return None
    since = SHARED_FS_SINCE.get(t)
    return since is not None and libvirt_version >= since


@dataclass(frozen=True)
class Disk:
    """The facts libvirt's storage rules read, for one disk."""

    target: str
    actual_type: str            # file, block, network, dir, nvme, volume (unresolved)
    path: str | None            # None: empty (no source), e.g. an empty CD-ROM
    readonly: bool = False
    shareable: bool = False
    cache: str | None = None    # None: the hypervisor default (writeback)


def copied(d: Disk, copy_storage: bool) -> bool:
    """qemuMigrationAnyCopyDisk without a disk list: with --copy-storage libvirt copies every disk that
    is not shareable, not read-only and not empty."""
    return copy_storage and not d.shareable and not d.readonly and d.path is not None


def unsafe_ruling(d: Disk, *, copy_storage: bool, fs_type: str | None, qemu_version: int,
                  libvirt_version: int) -> Ruling:
    """qemuMigrationSrcIsSafe for one disk (libvirt 9.0 qemu_migration.c), for a live migration without
    VIR_MIGRATE_UNSAFE (the caller skips it for --unsafe and for offline migrations: libvirt does too).

    ``fs_type``: the source filesystem of a file disk (`stat -f -c %T`), None when not known;
    ``libvirt_version``: the source's, where the rule runs."""
    if d.path is None or d.readonly:
        return ok("empty or read-only: safe")
    if copied(d, copy_storage):
        return ok("copied by --copy-storage")
    if d.actual_type == "network":
        return ok("network disk: safe")
    if d.actual_type == "nvme":
        return refuse("an NVMe disk is never shared storage: libvirt refuses (Migration without shared "
                      "storage is unsafe)")
    if d.actual_type == "file":
        if fs_type is None:
            return unknown(f"{d.path}: whether it is on a shared filesystem is unknown (libvirt refuses unless "
                           "it is NFS/GFS2/OCFS2/CephFS/...); configure SSH (--ssh) so the check can "
                           "`stat -f` it, or pass --copy-storage / --unsafe")
        shared = fs_is_shared(fs_type, libvirt_version)
        if shared is None:
            return unknown(f"{d.path} is on a FUSE filesystem: libvirt counts it shared only when it is "
                           "GlusterFS or Quobyte; pass --unsafe if both hosts share it, or --copy-storage")
        if not shared:
            return refuse(f"{d.path} is on {fs_type}, not a shared filesystem: libvirt refuses "
                          "(VIR_ERR_MIGRATE_UNSAFE: Migration without shared storage is unsafe)")
        if fs_type.strip().lower() in CLUSTER_FS:
            return ok(f"{d.path} is on the cluster filesystem {fs_type}")
    if d.shareable or (d.cache or "") in SAFE_CACHE or qemu_version >= DROP_CACHE_QEMU:
        return ok(f"{d.actual_type} disk: safe (cache {d.cache or 'default'})")
    return refuse(f"disk cache {d.cache or 'default'}: libvirt refuses with QEMU < 4.0 (VIR_ERR_MIGRATE_UNSAFE: "
                  "Migration may lead to data corruption if disks use cache other than none or directsync)")


def dest_ruling(d: Disk, *, live: bool, copy_storage: bool, exists_on_dst: bool | None,
                dst_pool_covers: bool | None) -> Ruling:
    """What the destination needs of one file/block disk for the migration to finish.

    Copied disks (qemuMigrationDstPrecreateStorage, libvirt 9.0): an existing file at the same path is used
    as it is; otherwise libvirt pre-creates it in the storage pool whose target path is the disk's directory,
    and fails with "Storage pool not found" when none does (block disks are never pre-created).
    Not copied: the destination QEMU opens the same path and fails when it is not there.
    Offline migrations only define the domain: nothing is opened."""
    if not live or d.path is None or d.actual_type not in ("file", "block"):
        return ok("nothing to open on the destination")
    if exists_on_dst:
        return ok(f"{d.path} exists on the destination")
    if copied(d, copy_storage):
        if d.actual_type == "file" and dst_pool_covers:
            return ok(f"a storage pool on the destination covers {d.path.rsplit('/', 1)[0]}: libvirt pre-creates it")
        if exists_on_dst is None:
            return unknown(f"{d.path}: no storage pool on the destination covers its directory and whether the "
                           "file exists there is unknown; configure SSH (--ssh) so the check can look")
        return refuse(f"{d.path} does not exist on the destination and no storage pool there covers "
                      f"{d.path.rsplit('/', 1)[0]}: libvirt fails (Storage pool not found)")
    if exists_on_dst is None:
        return unknown(f"{d.path}: whether it exists on the destination is unknown; configure SSH (--ssh)")
    return refuse(f"{d.path} does not exist on the destination: its QEMU cannot open it")


# ------------------------------------------------------------------ domain state, names, networks, secrets

def state_ruling(state: str, *, live: bool) -> Ruling:
    """virDomainMigrateToURI3 (libvirt.c + qemuMigrationSrcBegin, 9.0): a live migration needs an active
    domain ("domain is not running"). An offline one (VIR_MIGRATE_OFFLINE + PERSIST_DEST) is taken whatever
    the state: the persistent definition (a transient domain's live one) is copied and a running guest
    keeps running on the source — measured on the lab (state-running-offline, state-transient-offline)."""
    active = state not in ("shutoff", "crashed")
    if live:
        return ok(state) if active else refuse(f"domain is {state}: libvirt refuses a live migration "
                                               "(domain is not running)")
    return ok(f"{state}: an offline migration copies the definition")


def clash_ruling(*, name_match: bool, uuid_match: bool, dst_active: bool) -> Ruling:
    """virDomainObjListAdd on the destination (9.0): a domain with the same name and UUID that is not
    running is replaced by the incoming one; the same name with another UUID, the same UUID with another
    name, or a running domain refuse."""
    if not (name_match or uuid_match):
        return ok("neither the name nor the UUID is defined on the destination")
    if name_match and uuid_match and not dst_active:
        return ok("the destination holds this domain's own (inactive) definition: libvirt replaces it")
    return refuse("the destination has a clashing domain")


def needs_active_object(*, live: bool) -> bool:
    """Networks and storage pools a domain uses must be active on the destination only when its QEMU is
    started there (live). An offline migration only defines the domain (no lookup): a missing network or
    pool then only stops it from starting later."""
    return live


def secret_usage_ruling(*, by_uuid: bool, want_type: str, dst_type: str, dst_id: str | None,
                        want_id: str | None) -> Ruling:
    """virSecretGetSecretString (libvirt 9.0 secret_util.c): a secret referenced by UUID is looked up by
    UUID and only its usage *type* is checked; one referenced by usage is looked up by (type, usage id)."""
    if dst_type != want_type:
        return refuse(f"usage type {dst_type} on the destination, the domain needs {want_type}")
    if not by_uuid and dst_id != want_id:
        return refuse(f"referenced by usage {want_id!r} but the destination copy has {dst_id!r}")
    if dst_id != want_id:
        return ok(f"usage id {dst_id!r} differs from {want_id!r}, but libvirt looks it up by UUID")
    return ok("same usage")
