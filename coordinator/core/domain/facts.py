"""Pure: the facts of a domain XML the pre-flight checks need. Stdlib ElementTree, no I/O.

(``secret_refs.py`` owns secret discovery; this module owns everything else the checks read:
virt type, arch/machine/emulator, CPU, memory, TPMs, networks, bridges, pools, local disks.)
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .parse import domain_root
from ..errors import BadInput

# formatdomain "Memory Allocation": unit multipliers, to KiB.
_UNITS_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024, "m": 1024,
              "mib": 1024, "mb": 1000**2 / 1024, "g": 1024**2, "gib": 1024**2, "gb": 1000**3 / 1024,
              "t": 1024**3, "tib": 1024**3, "tb": 1000**4 / 1024}


@dataclass(frozen=True)
class TpmFacts:
    model: str            # tpm-tis, tpm-crb, ...
    backend: str          # emulator, passthrough, external
    version: str | None   # 1.2, 2.0 (None: libvirt's default)


@dataclass(frozen=True)
class DiskFacts:
    target: str | None
    type: str             # file, block, volume, network, dir
    device: str           # disk, cdrom, ...
    path: str | None      # file/block/dir source path
    pool: str | None      # type=volume
    volume: str | None
    readonly: bool
    shareable: bool
    cache: str | None = None  # <driver cache=...>; None: the hypervisor default


@dataclass(frozen=True)
class DomainFacts:
    name: str
    uuid: str
    virt_type: str        # kvm, qemu
    arch: str | None
    machine: str | None
    emulator: str | None
    memory_kib: int       # current memory (what the guest holds now)
    cpu_mode: str | None  # custom, host-model, host-passthrough, maximum; None without <cpu>
    cpu_xml: str | None   # the <cpu> element as libvirt gave it
    cpu_model: str | None
    cpu_check: str | None  # <cpu check=...>: none, partial, full (None: not given)
    tpms: tuple[TpmFacts, ...]
    networks: tuple[str, ...]  # <interface type='network'><source network=...>
    bridges: tuple[str, ...]   # <interface type='bridge'><source bridge=...>
    disks: tuple[DiskFacts, ...]
    # <tpm><backend><source type=... path=...>: (type, path) where the TPM state lives (libvirt ≥ 10.x)
    tpm_state: tuple[tuple[str, str], ...] = ()
    cpu_features: tuple[str, ...] | None = None  # names of <cpu><feature>, any policy; None without <cpu>

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.pool for d in self.disks if d.pool))


def to_kib(value: str, unit: str | None) -> int:
    mult = _UNITS_KIB.get((unit or "KiB").lower())
    if mult is None:
        raise BadInput(f"unknown memory unit {unit!r}")
    return int(int(value) * mult)


def parse_domain_facts(domain_xml: str) -> DomainFacts:
    """Facts of a domain XML (live or inactive, or a ``<domstatus>`` wrapper)."""
    return facts_of(domain_root(domain_xml))


def facts_of(root: ET.Element) -> DomainFacts:
    """Facts of a parsed ``<domain>`` element (``domain_root``): for callers that read
    other things from the same document (``document``), so it is parsed once."""
    ostype = root.find("os/type")
    cpu = root.find("cpu")
    networks, bridges = _interfaces(root)
    return DomainFacts(
        name=root.findtext("name") or "", uuid=(root.findtext("uuid") or "").lower(),
        virt_type=root.get("type", "kvm"), arch=ostype.get("arch") if ostype is not None else None,
        machine=ostype.get("machine") if ostype is not None else None,
        emulator=root.findtext("devices/emulator"), memory_kib=_memory_kib(root), cpu_mode=_cpu_mode(cpu),
        cpu_xml=ET.tostring(cpu, encoding="unicode") if cpu is not None else None,
        cpu_model=cpu.findtext("model") if cpu is not None else None,
        cpu_check=cpu.get("check") if cpu is not None else None, tpms=_tpms(root),
        networks=networks, bridges=bridges, disks=tuple(_disk(d) for d in root.findall("devices/disk")),
        tpm_state=tuple((src.get("type", "dir"), src.get("path", ""))
                        for src in root.findall("devices/tpm/backend/source") if src.get("path")),
        cpu_features=tuple(x.get("name", "") for x in cpu.iter("feature")) if cpu is not None else None)


def _memory_kib(root: ET.Element) -> int:
    """What the guest holds now (``currentMemory``), else its maximum (``memory``)."""
    mem = root.find("currentMemory")
    if mem is None:
        mem = root.find("memory")
    return to_kib((mem.text or "0").strip(), mem.get("unit")) if mem is not None else 0


def _cpu_mode(cpu: ET.Element | None) -> str | None:
    """libvirt's default mode is custom when a model is named."""
    if cpu is None:
        return None
    return cpu.get("mode") or ("custom" if cpu.find("model") is not None else None)


def _tpms(root: ET.Element) -> tuple[TpmFacts, ...]:
    tpms = []
    for t in root.findall("devices/tpm"):
        b = t.find("backend")
        tpms.append(TpmFacts(model=t.get("model", "tpm-tis"), backend=b.get("type", "") if b is not None else "",
                             version=b.get("version") if b is not None else None))
    return tuple(tpms)


def _interfaces(root: ET.Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The libvirt networks and host bridges the guest's interfaces use, each once, in order."""
    networks: list[str] = []
    bridges: list[str] = []
    for i in root.findall("devices/interface"):
        src = i.find("source")
        if src is None:
            continue
        if i.get("type") == "network" and src.get("network"):
            networks.append(src.get("network", ""))
        elif i.get("type") == "bridge" and src.get("bridge"):
            bridges.append(src.get("bridge", ""))
    return tuple(dict.fromkeys(networks)), tuple(dict.fromkeys(bridges))


def _disk(d: ET.Element) -> DiskFacts:
    src = d.find("source")
    dtype = d.get("type", "file")
    path = src.get({"file": "file", "block": "dev", "dir": "dir"}.get(dtype, "file")) if src is not None else None
    target = d.find("target")
    volume = src is not None and dtype == "volume"
    return DiskFacts(target=target.get("dev") if target is not None else None,
                     type=dtype, device=d.get("device", "disk"), path=path,
                     pool=src.get("pool") if volume and src is not None else None,
                     volume=src.get("volume") if volume and src is not None else None,
                     readonly=d.find("readonly") is not None, shareable=d.find("shareable") is not None,
                     cache=next((x.get("cache") for x in d.findall("driver")), None))


@dataclass(frozen=True)
class TpmCaps:
    """The ``<devices><tpm>`` part of virConnectGetDomainCapabilities."""

    supported: bool
    models: frozenset[str]
    backends: frozenset[str]
    versions: frozenset[str]
    versions_known: bool  # older libvirt has no backendVersion enum


# NOTE: one capabilities document serves every domain of a run: parse it once, not per domain.
@functools.lru_cache(maxsize=32)
def parse_tpm_caps(domcaps_xml: str) -> TpmCaps:
    root = ET.fromstring(domcaps_xml)
    tpm = root.find("devices/tpm")
    if tpm is None:
        return TpmCaps(False, frozenset(), frozenset(), frozenset(), False)

    def enum(name: str) -> frozenset[str] | None:
        e = tpm.find(f"enum[@name='{name}']")
        return None if e is None else frozenset(v.text or "" for v in e.findall("value"))

    versions = enum("backendVersion")
    return TpmCaps(supported=tpm.get("supported") == "yes", models=enum("model") or frozenset(),
                   backends=enum("backendModel") or frozenset(), versions=versions or frozenset(),
                   versions_known=versions is not None)


def tpm_problems(tpms: tuple[TpmFacts, ...], caps: TpmCaps) -> list[str]:
    """Why the destination cannot host these TPMs (empty: it can)."""
    if not tpms:
        return []
    if not caps.supported:
        return ["the destination offers no TPM devices"]
    out = []
    for t in tpms:
        if t.backend not in caps.backends:
            out.append(f"TPM backend {t.backend!r} not offered (has {', '.join(sorted(caps.backends)) or 'none'})")
        if t.model not in caps.models:
            out.append(f"TPM model {t.model!r} not offered (has {', '.join(sorted(caps.models)) or 'none'})")
        if t.backend == "emulator" and caps.versions_known and (t.version or "2.0") not in caps.versions:
            out.append(f"TPM version {t.version or '2.0'} not offered "
                       f"(has {', '.join(sorted(caps.versions)) or 'none'})")
    return out
