"""Domain-level checks: state, jobs, post-copy, name/UUID clash on the destination."""
from __future__ import annotations

import time

from coordinator.core import migration_rules
from coordinator.core.lease_rules import JobAction
from coordinator.steps.lease import Ownership, decide

from .context import CheckContext, Target
from .registry import Results, check, failed, passed


@check("DOMAIN-STATE", tags=("domain",), needs=("src",),
       hint="start the domain (live migration), or use --offline for a shut-off persistent domain")
def domain_state(ctx: CheckContext, t: Target) -> Results:
    """Live: running or paused. Offline: any state (libvirt copies the definition; a running guest stays)."""
    state = t.status.state
    live = ctx.policy_for(t).live
    rule = migration_rules.state_ruling(state, live=live)
    if rule.refused:
        return failed(f"domain is {state}; live migration needs it running or paused")
    if live:
        return passed(f"{state}")
    # NOTE: libvirt 9.0 migrates offline whatever the state (qemuMigrationSrcBegin checks no state for
    # VIR_MIGRATE_OFFLINE): a running guest's definition is copied (a transient one's live definition)
    # and the guest keeps running here — not a refusal, but rarely what an operator means.
    if t.status.active:
        return failed(f"domain is {state}{'' if t.status.persistent else ', transient'}: an offline migration "
                      "copies only its definition; the guest keeps running here", severity="warning")
    return passed("shut off (offline migration)")


def _ownership(ctx: CheckContext, t: Target) -> Ownership:
    """``steps.lease.ownership`` toward this destination, from the job read once per domain and the lease
    in the domain XML already read (what virDomainGetMetadata would return; no call per destination)."""
    return decide(t.job(), t.doc.lease, ctx.dst_uri, time.time())


@check("DOMAIN-JOB-ACTIVE", tags=("domain", "job"), needs=("src",),
       hint="wait for the running job (another migration, a backup, a dump, a save...) or the run holding "
            "the domain to finish; migcoord leaves jobs it does not own alone")
def domain_job(ctx: CheckContext, t: Target) -> Results:
    """No job (migration, backup, dump, save, ...) and no other coordinator's live lease is on the
    domain. An outgoing migration left by a dead migcoord run to this destination passes: migrate
    and evacuate adopt it (this check only reads)."""
    own = _ownership(ctx, t)
    if own.action is JobAction.BLOCK:
        return failed(own.message)
    return passed(own.message)


@check("DOMAIN-POSTCOPY-FAILED", tags=("domain", "job"), needs=("src",),
       hint="recover the failed post-copy migration first (virsh migrate --postcopy-resume) or "
            "destroy the domain; it cannot be migrated again as it is")
def domain_postcopy(ctx: CheckContext, t: Target) -> Results:
    """The domain is not in a failed post-copy state."""
    if t.status.postcopy_failed:
        return failed("the domain is in a failed post-copy migration state")
    return passed("not in a failed post-copy state")


@check("DOMAIN-EXISTS-ON-DEST", tags=("domain",),
       hint="remove or rename the domain on the destination first (virsh undefine / domrename)")
def domain_exists(ctx: CheckContext, t: Target) -> Results:
    """No domain with the same name or UUID exists on the destination."""
    clashes: dict[str, str] = {}
    index = ctx.host_facts.dst_domains()
    uuid = t.guest.uuid
    if uuid in index and t.status.active and _ownership(ctx, t).action is JobAction.ADOPT:
        # NOTE: the incoming side of a dead migcoord run's migration to this destination, which
        # migrate/evacuate adopt: the same domain, not a clash.
        return passed(f"{ctx.dst_uri} holds the incoming side of the migration to be adopted ({uuid})")
    if uuid in index:
        other_name, state = index[uuid]
        clashes[uuid] = (f"{ctx.dst_uri} already has a domain with this UUID: {other_name} ({uuid}, {state})")
    if t.facts.name in index:
        other_uuid, state = index[t.facts.name]
        if other_uuid not in clashes:
            clashes[other_uuid] = (f"{ctx.dst_uri} already has a domain with this name: {t.facts.name} "
                                   f"({other_uuid}, {state})")
    if uuid in index and index[uuid][0] == t.facts.name:
        # NOTE: the domain's own definition, not running there: libvirt replaces it (virDomainObjListAdd).
        state = index[uuid][1]
        if not migration_rules.clash_ruling(name_match=True, uuid_match=True,
                                            dst_active=state not in ("shutoff", "crashed")).refused:
            return passed(f"{ctx.dst_uri} holds this domain's own definition ({state}): libvirt replaces it")
    if clashes:
        return [failed(m) for m in clashes.values()]
    return passed("neither the name nor the UUID is defined on the destination")
