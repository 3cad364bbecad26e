"""Host-level checks over the libvirt API: reachability, versions, identity, transport."""
from __future__ import annotations

from coordinator.core.maintenance import parse_marker
from coordinator.core.versions import version_str
from coordinator.core.errors import Blocked
from coordinator.core.uris import same_host_message
from coordinator.steps.transport import check_transport

from .context import CheckContext
from .registry import Results, check, failed, passed

MIN_LIBVIRT = 7_001_000  # vTPM migration with local state


@check("HOST-REACHABLE", scope="pair", tags=("host", "connectivity"), needs=(),
       hint="is libvirtd running there, listening, and the URI right? (virsh -c URI version)")
def host_reachable(ctx: CheckContext) -> Results:
    """Both libvirt endpoints accept a connection."""
    out = []
    for uri in (ctx.src_uri, ctx.dst_uri):
        if uri in ctx.connect_errors:
            out.append(failed(ctx.connect_errors[uri], uri))
        else:
            out.append(passed("connected", uri))
    return out


@check("LIBVIRT-VERSION", scope="pair", tags=("host", "version", "tpm"),
       hint="upgrade libvirt to 7.1 or later on that host (vTPM migration with local state)")
def libvirt_version(ctx: CheckContext) -> Results:
    """libvirt ≥ 7.1 on both hosts (vTPM state migration)."""
    out = []
    for h in (ctx.source, ctx.destination):
        v = h.lib_version()
        if v < MIN_LIBVIRT:
            out.append(failed(f"libvirt {version_str(v)} is older than {version_str(MIN_LIBVIRT)}", h.uri))
        else:
            out.append(passed(f"libvirt {version_str(v)}", h.uri))
    return out


@check("HOST-SAME", scope="pair", tags=("host",),
       hint="pick another destination; if they really are different machines, give each a distinct "
            "host_uuid in libvirtd.conf")
def host_same(ctx: CheckContext) -> Results:
    """The destination is not the source (host UUID)."""
    a, b = ctx.source.host_uuid(), ctx.destination.host_uuid()
    same = same_host_message(ctx.src_uri, ctx.dst_uri, a, b)
    if same:
        return failed(same, ctx.dst_uri)
    return passed(f"distinct host UUIDs ({a} → {b})", ctx.dst_uri)


@check("HOST-IN-MAINTENANCE", scope="pair", tags=("host", "maintenance"),
       hint="pick another destination, or clear the mark when the work is done: migcoord maintenance off URI "
            "(or waive this check id)")
def host_in_maintenance(ctx: CheckContext) -> Results:
    """The destination is not marked as draining (migcoord maintenance / an evacuation)."""
    m = parse_marker(ctx.destination.maintenance_marker())
    if m is not None:
        return failed(f"{ctx.dst_uri} is {m.describe()}", ctx.dst_uri)
    return passed("not in maintenance", ctx.dst_uri)


@check("HYPERVISOR-VERSION", scope="pair", severity="warning", tags=("host", "version", "upgrade"),
       hint="back to an older QEMU during a rolling upgrade: pin machine types both know; MACHINE-TYPE, "
            "CPU-INCOMPATIBLE and TPM-CAPS check what the older one must offer")
def hypervisor_version(ctx: CheckContext) -> Results:
    """Whether the destination's QEMU is older than the source's (a rolling upgrade going back).

    NOTE: libvirt (9.0, 11.3) has no rule against an older destination QEMU: what fails is a machine type,
    CPU feature or device the older one does not know (measured trixie → bookworm: every guest that
    trixie's QEMU started as pc-q35-10.0 is refused; pinned to pc-q35-7.2 it migrates). So this informs;
    the checks of those facts decide."""
    s, d = ctx.source.hypervisor_version(), ctx.destination.hypervisor_version()
    if d < s:
        return failed(f"destination QEMU {version_str(d)} is older than source QEMU {version_str(s)}: it must "
                      "know the domain's machine type, CPU features and devices", ctx.dst_uri)
    return passed(f"QEMU {version_str(s)} → {version_str(d)}", ctx.dst_uri)


@check("SECRET-PLAINTEXT-TRANSPORT", scope="pair", tags=("secrets", "transport"), needs=(),
       override="--allow-plaintext-secrets",
       hint="use qemu+tls:// or qemu+ssh://, or pass --allow-plaintext-secrets")
def plaintext_transport(ctx: CheckContext) -> Results:
    """Secret values would travel only over encrypted (or local) connections."""
    try:
        check_transport(ctx.src_uri, ctx.dst_uri, allow_plaintext=ctx.secret_policy.allow_plaintext)
    except Blocked as e:
        return failed(e.message, "-")
    return passed("every connection carrying secret values is local or encrypted"
                  + (" (plaintext allowed by policy)" if ctx.secret_policy.allow_plaintext else ""), "-")
