"""Networks, storage pools and storage placement the domain uses, as the destination sees them."""
from __future__ import annotations

from coordinator.core import migration_rules
from coordinator.core.errors import MigcoordError

from .context import CheckContext, Target
from .registry import Results, Result, check, failed, passed, unknown


def _all_active(kind: str, names: tuple[str, ...], state_of, live: bool = True) -> list:
    """One failure per object the destination lacks or has inactive; empty when all are active.
    Offline they are warnings: libvirt only defines the domain there (migration_rules.needs_active_object)."""
    out = []
    later = "" if live else "; an offline migration still succeeds, but the domain will not start there until it is"
    sev = None if migration_rules.needs_active_object(live=live) else "warning"
    for name in names:
        st = state_of(name)
        if st is None:
            out.append(failed(f"{kind} {name!r} is not defined on the destination{later}", severity=sev))
        elif st != "active":
            out.append(failed(f"{kind} {name!r} is defined but not active on the destination{later}", severity=sev))
    return out


@check("NETWORK-UNAVAILABLE", tags=("network",),
       hint="define and start the network on the destination (virsh net-define / net-start / net-autostart)")
def networks(ctx: CheckContext, t: Target) -> Results:
    """Every libvirt network the domain's interfaces use exists and is active on the destination."""
    if not t.facts.networks:
        return passed("the domain uses no libvirt network")
    out = _all_active("network", t.facts.networks, ctx.host_facts.network_state, ctx.policy_for(t).live)
    return out or passed(f"network(s) {', '.join(t.facts.networks)} active on the destination")


@check("STORAGE-POOL-UNAVAILABLE", tags=("storage",),
       hint="define and start the storage pool on the destination (virsh pool-define / pool-start)")
def pools(ctx: CheckContext, t: Target) -> Results:
    """Every storage pool the domain's volume disks use exists and is active on the destination."""
    if not t.facts.pools:
        return passed("the domain uses no storage pool volume")
    out = _all_active("storage pool", t.facts.pools, ctx.host_facts.pool_state, ctx.policy_for(t).live)
    return out or passed(f"pool(s) {', '.join(t.facts.pools)} active on the destination")


def _disks(ctx: CheckContext, t: Target) -> list[migration_rules.Disk]:
    """The domain's disks as libvirt's storage rules see them: pool volumes resolved on the source to
    their path and actual type (virStorageSourceGetActualType)."""
    assert ctx.source is not None  # NOTE: the registry runs storage checks only with both hosts connected
    out = []
    for d in t.facts.disks:
        kind, path = d.type, d.path
        if d.type == "volume" and d.pool and d.volume:
            src = ctx.host_facts.volume_source(ctx.source, d.pool, d.volume)
            kind, path = src[1] if src else "volume", src[0] if src else None
        out.append(migration_rules.Disk(target=d.target or "?", actual_type=kind, path=path,
                                        readonly=d.readonly, shareable=d.shareable, cache=d.cache))
    return out


def _probe(ctx: CheckContext, role: str, fmt: str, path: str) -> str | None:
    """One SSH command's first output line on ``role``'s host; None without SSH or when it fails."""
    runner = ctx.runner(role)
    if runner is None:
        return None
    try:
        r = ctx.host_facts.probe(role, runner, fmt, path)
    except MigcoordError:  # NOTE: SSH is optional here: a host it cannot reach leaves the fact unknown
        return None
    line = next((ln.strip() for ln in r.stdout.splitlines() if ln.strip()), "")
    return line if r.ok and line else None


def _ruled(rulings: list[tuple[str, migration_rules.Ruling]], none: str) -> list[Result]:
    kinds = migration_rules.RulingOutcome
    out = [failed(f"disk {dev}: {r.reason}") if r.outcome is kinds.REFUSE else
           unknown(f"disk {dev}: {r.reason}") for dev, r in rulings if r.outcome is not kinds.OK]
    return out or [passed("; ".join(f"{dev}: {r.reason}" for dev, r in rulings) or none)]


@check("STORAGE-NOT-SHARED", tags=("storage",),
       hint="if the disk is on storage both hosts share, pass --unsafe; otherwise pass --copy-storage "
            "(the destination needs an image of the same size/format at that path or a pool covering it)")
def storage_shared(ctx: CheckContext, t: Target) -> list[Result] | Result:
    """libvirt's unsafe-migration rule (live, without --unsafe): every writable disk is copied, on a shared
    filesystem, or a network disk. Uses SSH (`stat -f` on the source) when configured, else it is unknown."""
    policy = ctx.policy_for(t)
    if not policy.live or policy.unsafe:
        # NOTE: libvirt skips qemuMigrationSrcIsSafe for VIR_MIGRATE_OFFLINE and VIR_MIGRATE_UNSAFE.
        return passed("offline migration: libvirt does not check storage" if not policy.live
                      else "--unsafe: libvirt does not check storage")
    assert ctx.source is not None
    disks = _disks(ctx, t)
    if not disks:  # NOTE: the versions below are asked only when a disk needs the rule
        return _ruled([], "no disk")
    qemu = ctx.host_facts.hypervisor_version(ctx.source)
    lib = ctx.host_facts.lib_version(ctx.source)
    rulings = []
    for d in disks:
        fs = _probe(ctx, "src", "stat -f -c %T {}", d.path) if d.actual_type == "file" and d.path else None
        rulings.append((d.target, migration_rules.unsafe_ruling(d, copy_storage=policy.copy_storage,
                                                                fs_type=fs, qemu_version=qemu,
                                                                libvirt_version=lib)))
    return _ruled(rulings, "no disk")


@check("STORAGE-ON-DEST", tags=("storage",),
       hint="create the image at the same path on the destination (same size and format), define a storage "
            "pool there whose target path is the disk's directory (--copy-storage pre-creates it), or pick "
            "storage both hosts see")
def storage_on_dest(ctx: CheckContext, t: Target) -> list[Result] | Result:
    """Every disk the destination QEMU opens exists there; a disk --copy-storage copies exists there or a
    storage pool there covers its directory (libvirt pre-creates it). Uses SSH (`test -e`) when configured."""
    policy = ctx.policy_for(t)
    if not policy.live:
        return passed("offline migration: nothing is opened on the destination")
    assert ctx.destination is not None
    rulings = []
    for d, fd in zip(_disks(ctx, t), t.facts.disks, strict=True):
        if fd.type == "volume" and fd.pool and fd.volume:
            if ctx.host_facts.pool_state(fd.pool) == "active":  # a missing pool is STORAGE-POOL-UNAVAILABLE's
                on_dst = ctx.host_facts.volume_source(ctx.destination, fd.pool, fd.volume) is not None
                rulings.append((d.target, migration_rules.ok(f"volume {fd.volume} in pool {fd.pool}") if on_dst
                                else migration_rules.refuse(f"pool {fd.pool} on the destination has no volume "
                                                            f"{fd.volume}")))
            continue
        if d.path is None or d.actual_type not in ("file", "block"):
            continue
        exists = _probe(ctx, "dst", "test -e {} && echo yes || echo no", d.path)
        pool = None
        if migration_rules.copied(d, policy.copy_storage) and d.actual_type == "file":
            pool = ctx.host_facts.pool_by_target_path(d.path.rsplit("/", 1)[0] or "/") is not None
        rulings.append((d.target, migration_rules.dest_ruling(
            d, live=True, copy_storage=policy.copy_storage,
            exists_on_dst=None if exists is None else exists == "yes", dst_pool_covers=pool)))
    return _ruled(rulings, "no disk to find on the destination")
