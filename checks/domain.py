"""Domain-level checks: state, jobs, post-copy, name/UUID clash on the destination."""
from __future__ import annotations

from .registry import check, failed, passed


@check("DOMAIN-STATE", tags=("domain",), needs=("src",),
       hint="start the domain (live migration), or use --offline for a shut-off persistent domain")
def domain_state(ctx, t):
    """Live: running or paused. Offline: shut off and persistent."""
    state = t.guest.state()
    if ctx.policy.live:
        if state in ("running", "paused"):
            return passed(f"{state}")
        return failed(f"domain is {state}; live migration needs it running or paused")
    if state == "shutoff" and t.guest.is_persistent():
        return passed("shut off and persistent (offline migration)")
    return failed(f"domain is {state}{'' if t.guest.is_persistent() else ', transient'}; "
                  "offline migration needs a shut-off persistent domain")


@check("DOMAIN-JOB-ACTIVE", tags=("domain", "job"), needs=("src",),
       hint="wait for the running job (e.g. another migration, a dump or a save) to finish, "
            "or abort it with virsh domjobabort")
def domain_job(ctx, t):
    """No job (migration, save, dump, ...) is in progress on the domain."""
    job = t.guest.job_type()
    if job not in ("none", "completed", "failed", "cancelled"):
        return failed(f"a job ({job}) is in progress on the domain (virDomainGetJobStats)")
    return passed("no job in progress")


@check("DOMAIN-POSTCOPY-FAILED", tags=("domain", "job"), needs=("src",),
       hint="recover the failed post-copy migration first (virsh migrate --postcopy-resume) or "
            "destroy the domain; it cannot be migrated again as it is")
def domain_postcopy(ctx, t):
    """The domain is not in a failed post-copy state."""
    if t.guest.postcopy_failed():
        return failed("the domain is in a failed post-copy migration state")
    return passed("not in a failed post-copy state")


@check("DOMAIN-EXISTS-ON-DEST", tags=("domain",),
       hint="remove or rename the domain on the destination first (virsh undefine / domrename)")
def domain_exists(ctx, t):
    """No domain with the same name or UUID exists on the destination."""
    clashes: dict[str, str] = {}
    for what, ident in (("UUID", t.guest.uuid), ("name", t.facts.name)):
        other = ctx.dst.find_guest(ident)
        if other is not None and other.uuid not in clashes:
            clashes[other.uuid] = (f"{ctx.dst_uri} already has a domain with this {what}: "
                                   f"{other.name} ({other.uuid}, {other.state()})")
    if clashes:
        return [failed(m) for m in clashes.values()]
    return passed("neither the name nor the UUID is defined on the destination")
