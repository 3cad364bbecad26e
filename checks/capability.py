"""Destination capability checks: TPM device support, CPU compatibility, free memory."""
from __future__ import annotations

from coordinator.core import migration_rules
from coordinator.core.domain.facts import DomainFacts, parse_tpm_caps, tpm_problems

from .context import CheckContext, Target
from .registry import Results, check, failed, passed, unknown


@check("TPM-CAPS", tags=("capability", "tpm"),
       hint="the destination's QEMU/libvirt must offer the emulator TPM backend with the domain's TPM "
            "model and version (virsh domcapabilities); install swtpm or pick another host")
def tpm_caps(ctx: CheckContext, t: Target) -> Results:
    """The destination's domain capabilities offer the TPM emulator backend, model and version."""
    if not t.facts.tpms:
        return passed("the domain has no TPM")
    caps = parse_tpm_caps(ctx.host_facts.domcaps(ctx.destination, t.facts))
    problems = tpm_problems(t.facts.tpms, caps)
    if problems:
        return [failed(p) for p in problems]
    desc = ", ".join(f"{x.model}/{x.backend}/{x.version or 'default'}" for x in t.facts.tpms)
    return passed(f"destination offers {desc}")


def _handed_over(ctx: CheckContext, t: Target) -> tuple[DomainFacts, bool, str]:
    """The definition libvirt hands the destination, whether the destination's QEMU starts with it during
    the migration (a live one) rather than later, and what to call it in a finding.

    NOTE: qemuMigrationSrcBeginXML (libvirt 9.0 and 11.3) sends the live definition formatted
    VIR_DOMAIN_XML_MIGRATABLE with the CPU as defined (``priv->origCPU``), and the CPU QEMU runs in the
    cookie. A live migration starts the destination QEMU with the cookie's CPU: the live XML's. An offline
    one of a running transient domain only defines the migratable form, which is what a start there uses
    (measured trixie → bookworm: the live CPU lists a feature libvirt 9.0 does not know; the copy starts)."""
    if t.status.active and ctx.policy_for(t).live:
        return t.facts, True, "live definition"
    if t.status.active and not t.status.persistent:
        return t.migratable_facts(), False, "migratable live definition"
    return t.doc.defined, False, "persistent definition"


@check("MACHINE-TYPE", tags=("capability", "machine", "upgrade"),
       hint="pin the domain to a machine type both hosts' QEMU know (virsh capabilities lists them), e.g. "
            "the older host's pc-q35-X.Y, then restart it; or pick a destination with the newer QEMU")
def machine_type(ctx: CheckContext, t: Target) -> Results:
    """The destination's QEMU knows the machine type of the definition libvirt hands over (``_handed_over``);
    offline, whether it would start there — as CPU-INCOMPATIBLE judges it."""
    f, live, _ = _handed_over(ctx, t)
    rule = migration_rules.machine_ruling(f.machine, ctx.host_facts.machine_types(ctx.destination, f.arch or "x86_64"),
                                          live=live)
    if rule.refused:
        return failed(rule.reason)
    return unknown(rule.reason) if rule.outcome is migration_rules.RulingOutcome.UNKNOWN else passed(rule.reason)


@check("CPU-INCOMPATIBLE", tags=("capability", "cpu"),
       hint="use a CPU model both hosts support (e.g. host-model, or a named model the destination offers), "
            "or pick a destination with a compatible CPU")
def cpu_compatible(ctx: CheckContext, t: Target) -> Results:
    """The guest CPU passes the test libvirt applies when it starts QEMU with it on the destination."""
    # NOTE: libvirt's rule, not a bare compare (migration_rules.cpu_test): a live migration starts the
    # destination QEMU with the live definition; an offline one starts nothing, so what matters is whether
    # the persistent definition would start there. check='none' (and no <cpu>) is never compared.
    f, live, defn = _handed_over(ctx, t)
    test = migration_rules.cpu_test(f.cpu_mode, f.cpu_check, f.cpu_model is not None, live_definition=live)
    mode_supported = compare = None
    detail = ""
    if test is migration_rules.CpuTest.MODE:
        domcaps = ctx.host_facts.domcaps(ctx.destination, f)
        mode_supported = migration_rules.cpu_mode_supported(domcaps, f.cpu_mode or "")
    elif test in (migration_rules.CpuTest.COMPARE, migration_rules.CpuTest.EXACT):
        assert f.cpu_xml is not None
        xml = f.cpu_xml
        compare, detail = migration_rules.either_compare([
            ctx.host_facts.compare_host_cpu(xml) if what == "host" else ctx.host_facts.compare_cpu(f)
            for what in migration_rules.cpu_compared_with(f.virt_type)])
    unlisted = migration_rules.x86_hypervisor_unlisted(f.cpu_features, f.arch)
    rule = migration_rules.cpu_ruling(test, mode=f.cpu_mode, mode_supported=mode_supported, compare=compare,
                                      detail=detail, hypervisor_unlisted=unlisted)
    what = f"CPU {f.cpu_model or f.cpu_mode or 'default'}" + (f" check={f.cpu_check}" if f.cpu_check else "")
    msg = f"{what} ({defn}): {rule.reason}"
    if rule.outcome is migration_rules.RulingOutcome.REFUSE:
        return failed(msg)
    if rule.outcome is migration_rules.RulingOutcome.UNKNOWN:
        return unknown(msg)
    return passed(msg)


@check("MEMORY-INSUFFICIENT", tags=("capability", "memory"),
       hint="free memory on the destination or pick another host")
def memory(ctx: CheckContext, t: Target) -> Results:
    """The destination has at least the guest's current memory free."""
    need = t.facts.memory_kib * 1024
    free = ctx.host_facts.free_memory()
    msg = f"guest needs {need / 2**20:.0f} MiB, destination has {free / 2**20:.0f} MiB free"
    return failed(msg) if free < need else passed(msg)
