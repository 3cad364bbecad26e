"""Destination capability checks: TPM device support, CPU compatibility, free memory."""
from __future__ import annotations

from coordinator.core import domfacts

from .context import CheckContext, Target
from .registry import Results, check, failed, passed, skipped


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


@check("CPU-INCOMPATIBLE", tags=("capability", "cpu"),
       hint="use a CPU model both hosts support (e.g. host-model, or a named model the destination offers), "
            "or pick a destination with a compatible CPU")
def cpu_compatible(ctx: CheckContext, t: Target) -> Results:
    """The domain's CPU runs on the destination (virConnectCompareHypervisorCPU)."""
    f = t.facts
    where = dict(emulator=f.emulator, arch=f.arch, machine=f.machine, virttype=f.virt_type)
    if f.cpu_xml is None:
        return passed("no <cpu> element: the hypervisor's default CPU")
    if f.cpu_mode == "host-model":
        # NOTE: the inactive/unstarted form; a running domain's live XML has it expanded to custom.
        ok, _ = domfacts.host_model_cpu(ctx.domcaps(ctx.destination, f))
        return passed("host-model: the destination's own host-model CPU") if ok else \
            failed("the destination does not support the host-model CPU mode")
    if f.cpu_mode in ("host-passthrough", "maximum"):
        # NOTE: no CPU definition to compare; the guest sees the source's host CPU, so compare the
        # source's host-model CPU on the destination: anything less than identical may break the guest.
        ok, src_cpu = domfacts.host_model_cpu(ctx.domcaps(ctx.source, f))
        if not ok or src_cpu is None:
            return skipped(f"{f.cpu_mode}: the source reports no host-model CPU to compare")
        result, detail = ctx.destination.compare_cpu(src_cpu, **where)
        if result == "incompatible":
            return failed(f"{f.cpu_mode}: the source host CPU is incompatible with the destination's"
                          + (f": {detail}" if detail else ""))
        return passed(f"{f.cpu_mode}: source host CPU is {result} on the destination")
    result, detail = ctx.destination.compare_cpu(f.cpu_xml, **where)
    model = f.cpu_model or f.cpu_mode
    if result == "incompatible":
        return failed(f"CPU {model} is incompatible with the destination" + (f": {detail}" if detail else ""))
    return passed(f"CPU {model}: {result} on the destination")


@check("MEMORY-INSUFFICIENT", tags=("capability", "memory"),
       hint="free memory on the destination or pick another host")
def memory(ctx: CheckContext, t: Target) -> Results:
    """The destination has at least the guest's current memory free."""
    need = t.facts.memory_kib * 1024
    free = ctx.destination.free_memory()
    msg = f"guest needs {need / 2**20:.0f} MiB, destination has {free / 2**20:.0f} MiB free"
    return failed(msg) if free < need else passed(msg)
