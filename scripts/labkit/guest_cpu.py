"""Which accelerator and which guest <cpu> the lab uses: probed on this machine, never assumed.

`scripts/lab up` records the probe's choice in state.json (``state["cpu"]``); every lab guest
(``scripts/lab vm``, the benchmarks) uses that one record.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from labkit.console import die
from labkit.state import LAB_DIR, Host, State, host_uri


def accel() -> str:
    """The libvirt domain type for lab guests: "kvm" when /dev/kvm opens, else "qemu" (TCG).
    MIGCOORD_LAB_ACCEL=tcg forces TCG even where KVM works (=kvm insists on KVM)."""
    forced = os.environ.get("MIGCOORD_LAB_ACCEL", "").strip().lower()
    if forced in ("tcg", "qemu"):
        return "qemu"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return "kvm"
    except OSError:
        if forced == "kvm":
            die("MIGCOORD_LAB_ACCEL=kvm but /dev/kvm cannot be opened")
        return "qemu"


# NOTE: nested KVM cannot set some MSRs that host-model asks for; QEMU 7.2 then aborts at
# guest start with "failed to set MSR 0x10a to 0x69" (LAB-NOTES). The MSR names the CPU
# feature to disable. Only features libvirt knows by these names belong here.
MSR_FEATURES = {0x10a: "arch-capabilities"}
HOST_MODEL = "<cpu mode='host-model'/>"
HYPERVISOR_DEFAULT = ""  # no <cpu> element: libvirt stores qemu64 with check='none'
# A lab whose hosts run different releases (a rolling upgrade) first tries a named model every release
# knows, as a mixed fleet pins one: a host-model guest started on QEMU 10 / libvirt 11.3 lists features
# libvirt 9.0 does not know ("unknown CPU feature: fdp-excptn-only", measured trixie → bookworm), so every
# live scenario of that pair would be blocked by the CPU alone and the matrix would prove nothing else.
FLEET_BASELINE = "<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>kvm64</model></cpu>"
PROBE_XML = """<domain type='{accel}'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  {cpu}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def features_kvm_cannot_set(error: str) -> list[str]:
    """CPU features to disable, read off QEMU's "failed to set MSR 0x..." start-up error."""
    msrs = {int(m, 16) for m in re.findall(r"failed to set MSR (0x[0-9a-fA-F]+)", error)}
    return sorted(MSR_FEATURES[m] for m in msrs if m in MSR_FEATURES)


def host_model_without(features: list[str]) -> str:
    inner = "".join(f"<feature policy='disable' name='{f}'/>" for f in features)
    return f"<cpu mode='host-model'>{inner}</cpu>"


def choose_cpu(try_start: Callable[[str], str | None], first: str | None = None,
               mixed_releases: bool = False) -> dict[str, Any]:
    """Probe which guest CPU definition starts here, in order: ``first`` (if given), the fleet baseline
    (``mixed_releases`` only), host-model, host-model without the features this host's KVM cannot set, the
    hypervisor default. ``try_start(cpu_xml)`` returns None when a guest with that <cpu> started, else the
    error. Returns {"xml", "name", "tried": [{"name", "xml", "error"}]}."""
    candidates = (([("given", first)] if first is not None else [])
                  + ([("fleet-baseline", FLEET_BASELINE)] if mixed_releases else [])
                  + [("host-model", HOST_MODEL)])
    tried: list[dict[str, Any]] = []
    while candidates:
        name, xml = candidates.pop(0)
        error = try_start(xml)
        tried.append({"name": name, "xml": xml, "error": error})
        if error is None:
            return {"name": name, "xml": xml, "tried": tried}
        if name == "host-model":
            bad = features_kvm_cannot_set(error)
            if bad:
                candidates.append((f"host-model-without-{'-'.join(bad)}", host_model_without(bad)))
            candidates.append(("hypervisor-default", HYPERVISOR_DEFAULT))
    die("no guest CPU definition starts on this machine:\n" +
        "\n".join(f"  {t['name']}: {t['error']}" for t in tried))


def probe_cpu(state: State, hosts: list[Host], first: str | None = None) -> dict[str, Any]:
    """Start (and at once destroy) a tiny transient guest per candidate on each of ``hosts`` (one per
    release the lab runs: QEMU 7.2 and 10 accept different CPUs); a candidate must start on all."""
    def try_start(cpu_xml: str) -> str | None:
        for h in hosts:
            error = try_start_on(h, cpu_xml)
            if error is not None:
                return f"{h.get('stack', '')}: {error}".lstrip(": ")
        return None

    def try_start_on(h: Host, cpu_xml: str) -> str | None:
        name = f"lab-cpu-probe-{uuidlib.uuid4().hex[:8]}"
        xml = PROBE_XML.format(accel=state["accel"], name=name, cpu=cpu_xml)
        with tempfile.NamedTemporaryFile("w", dir=LAB_DIR, suffix=".xml") as f:
            f.write(xml)
            f.flush()
            r = subprocess.run(["virsh", "-q", "-c", host_uri(h), "create", f.name],
                               capture_output=True, text=True)
        if r.returncode != 0:
            return " ".join(r.stderr.split()) or f"virsh create exited {r.returncode}"
        subprocess.run(["virsh", "-q", "-c", host_uri(h), "destroy", name], capture_output=True)
        return None
    return choose_cpu(try_start, first, mixed_releases=len({h.get("stack", "") for h in hosts}) > 1)


def lab_cpu(state: State) -> str:
    """The <cpu> element every lab guest gets: the one `up` found to start on this machine."""
    if "cpu" not in state:
        die("the lab has no probed guest CPU: run scripts/lab up")
    return state["cpu"]["xml"]
