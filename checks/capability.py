"""Destination capability checks: TPM device support, CPU compatibility, free memory."""
from __future__ import annotations

from coordinator.core import domfacts, migration_rules

from .context import CheckContext, Target
from .registry import Results, check, failed, passed, unknown


@check("TPM-CAPS", tags=("capability", "tpm"),
       hint="the destination's QEMU/libvirt must offer the emulator TPM backend with the domain's TPM "
            "model and version (virsh domcapabilities); install swtpm or pick another host")
def tpm_caps(ctx: CheckContext, t: Target) -> Results:
    """The destination's domain capabilities offer the TPM emulator backend, model and version."""
    if not t.facts.tpms:
        return passed("the domain has no TPM")
    caps = domfacts.parse_tpm_caps(ctx.domcaps(ctx.destination, t.facts))
    problems = domfacts.tpm_problems(t.facts.tpms, caps)
    if problems:
        return [failed(p) for p in problems]
    desc = ", ".join(f"{x.model}/{x.backend}/{x.version or 'default'}" for x in t.facts.tpms)
    return passed(f"destination offers {desc}")


def _live_definition(ctx: CheckContext, t: Target) -> bool:
    """Whether libvirt hands the destination the live definition (a live migration, or a running transient
    domain's — all it has) rather than the persistent one."""
    return t.status.active and (ctx.policy_for(t).live or not t.status.persistent)


@check("MACHINE-TYPE", tags=("capability", "machine", "upgrade"),
       hint="pin the domain to a machine type both hosts' QEMU know (virsh capabilities lists them), e.g. "
            "the older host's pc-q35-X.Y, then restart it; or pick a destination with the newer QEMU")
def machine_type(ctx: CheckContext, t: Target) -> Results:
    """The destination's QEMU knows the domain's machine type: the live one for a live migration, the
    persistent one for an offline one (would it start there — as CPU-INCOMPATIBLE judges it)."""
    live = _live_definition(ctx, t)
    f = t.facts if live else t.doc.defined
    rule = migration_rules.machine_ruling(f.machine, ctx.machine_types(ctx.destination, f.arch or "x86_64"),
                                          live=live)
    if rule.refused:
        return failed(rule.reason)
    return unknown(rule.reason) if rule.outcome is migration_rules.Outcome.UNKNOWN else passed(rule.reason)


@check("CPU-INCOMPATIBLE", tags=("capability", "cpu"),
       hint="use a CPU model both hosts support (e.g. host-model, or a named model the destination offers), "
            "or pick a destination with a compatible CPU")
def cpu_compatible(ctx: CheckContext, t: Target) -> Results:
    """The guest CPU passes the test libvirt applies when it starts QEMU with it on the destination."""
    # NOTE: libvirt's rule, not a bare compare (migration_rules.cpu_test): a live migration starts the
    # destination QEMU with the live definition; an offline one starts nothing, so what matters is whether
    # the persistent definition would start there. check='none' (and no <cpu>) is never compared.
    # The definition libvirt hands over: the live one for a live migration, else the persistent one — or the
    # live one of a running transient domain (all it has).
    live = _live_definition(ctx, t)
    f = t.facts if live else t.doc.defined
    test = migration_rules.cpu_test(f.cpu_mode, f.cpu_check, f.cpu_model is not None, live_definition=live)
    mode_supported = compare = None
    detail = ""
    if test is migration_rules.CpuTest.MODE:
        mode_supported = migration_rules.cpu_mode_supported(ctx.domcaps(ctx.destination, f), f.cpu_mode or "")
    elif test in (migration_rules.CpuTest.COMPARE, migration_rules.CpuTest.EXACT):
        assert f.cpu_xml is not None
        xml = f.cpu_xml
        compare, detail = migration_rules.either_compare([
            ctx.compare_host_cpu(xml) if what == "host" else ctx.compare_cpu(f)
            for what in migration_rules.cpu_compared_with(f.virt_type)])
    unlisted = migration_rules.x86_hypervisor_unlisted(f.cpu_features, f.arch)
    rule = migration_rules.cpu_ruling(test, mode=f.cpu_mode, mode_supported=mode_supported, compare=compare,
                                      detail=detail, hypervisor_unlisted=unlisted)
    what = f"CPU {f.cpu_model or f.cpu_mode or 'default'}" + (f" check={f.cpu_check}" if f.cpu_check else "")
    defn = "live definition" if live else "persistent definition"
    msg = f"{what} ({defn}): {rule.reason}"
    if rule.outcome is migration_rules.Outcome.REFUSE:
        return failed(msg)
    if rule.outcome is migration_rules.Outcome.UNKNOWN:
        return unknown(msg)
    return passed(msg)


@check("MEMORY-INSUFFICIENT", tags=("capability", "memory"),
       hint="free memory on the destination or pick another host")
def memory(ctx: CheckContext, t: Target) -> Results:
    """The destination has at least the guest's current memory free."""
    need = t.facts.memory_kib * 1024
    free = ctx.free_memory()
    msg = f"guest needs {need / 2**20:.0f} MiB, destination has {free / 2**20:.0f} MiB free"
    return failed(msg) if free < need else passed(msg)
