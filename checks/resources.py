"""Networks, storage pools and storage placement the domain uses, as the destination sees them."""
from __future__ import annotations

from .context import CheckContext, Target
from .registry import Results, check, failed, passed


def _all_active(kind: str, names: tuple[str, ...], state_of) -> list:
    """One failure per object the destination lacks or has inactive; empty when all are active."""
    out = []
    for name in names:
        st = state_of(name)
        if st is None:
            out.append(failed(f"{kind} {name!r} is not defined on the destination"))
        elif st != "active":
            out.append(failed(f"{kind} {name!r} is defined but not active on the destination"))
    return out


@check("NETWORK-UNAVAILABLE", tags=("network",),
       hint="define and start the network on the destination (virsh net-define / net-start / net-autostart)")
def networks(ctx: CheckContext, t: Target) -> Results:
    """Every libvirt network the domain's interfaces use exists and is active on the destination."""
    if not t.facts.networks:
        return passed("the domain uses no libvirt network")
    out = _all_active("network", t.facts.networks, ctx.destination.network_state)
    return out or passed(f"network(s) {', '.join(t.facts.networks)} active on the destination")


@check("STORAGE-POOL-UNAVAILABLE", tags=("storage",),
       hint="define and start the storage pool on the destination (virsh pool-define / pool-start)")
def pools(ctx: CheckContext, t: Target) -> Results:
    """Every storage pool the domain's volume disks use exists and is active on the destination."""
    if not t.facts.pools:
        return passed("the domain uses no storage pool volume")
    out = _all_active("storage pool", t.facts.pools, ctx.destination.pool_state)
    return out or passed(f"pool(s) {', '.join(t.facts.pools)} active on the destination")


@check("STORAGE-NOT-SHARED", severity="warning", tags=("storage",),
       hint="if the disk is on storage both hosts share, pass --unsafe; otherwise pass --copy-storage "
            "(the destination needs an image of the same size/format at that path or a pool covering it)")
def storage_shared(ctx: CheckContext, t: Target) -> Results:
    """Local disks (file/block with a path) need shared storage, --copy-storage or --unsafe."""
    disks = t.facts.local_disks
    if not disks:
        return passed("no file or block disk")
    if ctx.policy.copy_storage or ctx.policy.unsafe:
        how = "copy-storage" if ctx.policy.copy_storage else "unsafe"
        return passed(f"{len(disks)} disk(s) handled by --{how}")
    # NOTE: over the libvirt API alone we cannot tell whether a path is shared storage (libvirt
    # itself refuses with VIR_ERR_MIGRATE_UNSAFE), so every such disk is a warning.
    return [failed(f"disk {d.target or '?'} ({d.path}) may be local storage; libvirt refuses an "
                   f"unsafe migration without --copy-storage or --unsafe") for d in disks]
