"""What the hosts say, asked once per run: the memoised read-only host queries every check shares.

``HostFacts`` is made by the context for each run of the checks (``CheckContext.new_run``); its
answers live in a ``Memo`` — the run's own, or one a caller shares between several contexts (an
evacuation plan: the source's answers are asked once for all destinations). Keys name the host (its
URI) and the question, so a shared memo never mixes two hosts up.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from coordinator.core import migration_rules
from coordinator.core.domain.facts import DomainFacts
from coordinator.virt.host import Host

if TYPE_CHECKING:  # the SSH seam is loaded when a runner is first asked for, not at start-up
    from coordinator.ssh.runner import CommandResult, CommandRunner

_MISSING = object()
T = TypeVar("T")


class Memo:
    """Answers to read-only questions asked during one run, each computed once per key and shared by
    every check and every domain — and, when the caller hands one memo to several contexts, by every
    destination (an evacuation plan: the source's answers are asked once for all of them). Keys name
    the host (its URI) and the question. Thread-safe: whoever asks for a key being computed waits for
    that answer instead of asking again. A question that raises is not remembered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[Hashable, Any] = {}
        self._asking: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, ask: Callable[[], T]) -> T:
        answer = self._answers.get(key, _MISSING)
        if answer is not _MISSING:
            return cast(T, answer)
        with self._lock:
            one = self._asking.setdefault(key, threading.Lock())
        with one:
            answer = self._answers.get(key, _MISSING)
            if answer is _MISSING:
                answer = self._answers[key] = ask()
        return cast(T, answer)


class HostFacts:
    """The read-only host queries of one run, each asked once (``memo``) and thread-safe. Questions about
    "the destination" go to ``dst`` (keyed by ``dst_uri``); the others name the host they ask."""

    def __init__(self, src_uri: str, dst_uri: str, dst: Host | None, memo: Memo) -> None:
        self.src_uri, self.dst_uri = src_uri, dst_uri
        self._dst = dst
        self.memo = memo

    @property
    def destination(self) -> Host:
        """The destination connection; only for checks that declare ``needs=(..., "dst")``."""
        assert self._dst is not None, "the registry runs this check only when the destination is reachable"
        return self._dst

    def once(self, key: Hashable, ask: Callable[[], T]) -> T:
        """``ask()`` the first time ``key`` is asked in this run (``memo``), its answer afterwards."""
        return self.memo.get(key, ask)

    def dst_domains(self) -> dict[str, tuple[str, str]]:
        """The destination's domains, listed once per run (``Host.domain_index``)."""
        return self.once(("domain_index", self.dst_uri), self.destination.domain_index)

    def domcaps(self, host: Host, f: DomainFacts) -> str:
        """virConnectGetDomainCapabilities for this domain's emulator/arch/machine/virt type, once per run.
        NOTE: libvirt refuses the call for a machine type its QEMU does not know (a guest started on a newer
        QEMU); MACHINE-TYPE reports that, and the other questions are then asked of the default machine."""
        machine = f.machine if f.machine in self.machine_types(host, f.arch or "x86_64") else None
        return self.once(("domcaps", host.uri, f.emulator or "", f.arch or "", machine or "", f.virt_type),
                         lambda: host.domain_capabilities(f.emulator, f.arch, machine, f.virt_type))

    def machine_types(self, host: Host, arch: str) -> frozenset[str]:
        """The machine types ``host``'s QEMU knows for ``arch`` (virConnectGetCapabilities, once per run)."""
        caps = self.once(("capabilities", host.uri), host.capabilities)
        return migration_rules.machine_types(caps, arch)

    def lib_version(self, host: Host) -> int:
        return self.once(("lib_version", host.uri), host.lib_version)

    def hypervisor_version(self, host: Host) -> int:
        return self.once(("hypervisor_version", host.uri), host.hypervisor_version)

    def free_memory(self) -> int:
        """The destination's free memory, read once per run."""
        return self.once(("free_memory", self.dst_uri), self.destination.free_memory)

    def network_state(self, name: str) -> str | None:
        return self.once(("network_state", self.dst_uri, name), lambda: self.destination.network_state(name))

    def pool_state(self, name: str) -> str | None:
        return self.once(("pool_state", self.dst_uri, name), lambda: self.destination.pool_state(name))

    def pool_by_target_path(self, path: str) -> str | None:
        return self.once(("pool_by_target_path", self.dst_uri, path),
                         lambda: self.destination.pool_by_target_path(path))

    def volume_source(self, host: Host, pool: str, volume: str) -> tuple[str, str] | None:
        return self.once(("volume_source", host.uri, pool, volume), lambda: host.volume_source(pool, volume))

    def compare_cpu(self, f: DomainFacts) -> tuple[str, str]:
        """The destination's virConnectCompareHypervisorCPU of this CPU (once per distinct CPU and run)."""
        assert f.cpu_xml is not None
        xml = f.cpu_xml
        return self.once(("compare_cpu", self.dst_uri, xml, f.emulator, f.arch, f.machine, f.virt_type),
                         lambda: self.destination.compare_cpu(xml, emulator=f.emulator, arch=f.arch,
                                                              machine=f.machine, virttype=f.virt_type))

    def compare_host_cpu(self, cpu_xml: str) -> tuple[str, str]:
        """The destination's virConnectCompareCPU of this CPU (once per distinct CPU and run)."""
        return self.once(("compare_host_cpu", self.dst_uri, cpu_xml),
                         lambda: self.destination.compare_host_cpu(cpu_xml))

    def probe(self, role: str, runner: CommandRunner, fmt: str, *args: str) -> CommandResult:
        """One read-only SSH command on ``role``'s host, run once per run (e.g. swtpm's capabilities,
        the filesystem under the TPM state directory: the same for every domain)."""
        uri = self.src_uri if role == "src" else self.dst_uri
        return self.once(("probe", uri, fmt, args), lambda: runner.run(fmt, *args))
