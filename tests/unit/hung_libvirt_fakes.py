"""Stand-ins for two libvirt hosts that drive ``flows.migrate`` end to end without libvirtd, where any
named call can be made to never return (it blocks on an Event the test releases at teardown).

mock: a hung libvirt call cannot be produced for real without the network-fault lab of issue 22, so
the hang is a fake call that blocks; the rest of the flow (locks, lease, provisioning, rollback,
where-is, the monitor) is the real code. The pre-flight checks are replaced by an empty report.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from checks.registry import Report
from coordinator.core.lease_rules import NAMESPACE
from coordinator.core.model import SecretInfo
from coordinator.flows import migrate as flow
from coordinator.steps.parameters import MigrateOptions, Runtime
from coordinator.virt.guest import GuestStatus, JobInfo

SRC = "qemu+tls://hv1.invalid/system"
DST = "qemu+tls://hv2.invalid/system"
VM_UUID = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
SECRET_UUID = "0b3a1c3e-4bd4-4e1f-9a55-6c0a5e2d7f10"
DOMAIN_XML = (f"<domain type='kvm'><name>vm1</name><uuid>{VM_UUID}</uuid><memory unit='MiB'>32</memory>"
              "<devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'>"
              f"<encryption secret='{SECRET_UUID}'/></backend></tpm></devices></domain>")
SECRET_XML = (f"<secret ephemeral='no' private='no'><uuid>{SECRET_UUID}</uuid>"
              f"<usage type='vtpm'><name>vm1-vtpm</name></usage></secret>")


class Hangs:
    """Which calls never return (``names``); ``release()`` lets every blocked one go (teardown)."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.gate = threading.Event()
        self.entered: list[str] = []
        self.lock = threading.Lock()

    def maybe(self, name: str) -> None:
        if name in self.names:
            with self.lock:
                self.entered.append(name)
            self.gate.wait()

    def release(self) -> None:
        self.gate.set()


class FakeGuest:
    def __init__(self, host: FakeHost, active: bool = True) -> None:
        self.host, self.active = host, active
        self.name, self.uuid = "vm1", VM_UUID
        self.meta: str | None = None
        self.aborts = 0

    def _call(self, name: str) -> None:
        self.host._call(name)

    def is_active(self) -> bool:
        self._call("isActive")
        return self.active

    def is_persistent(self) -> bool:
        return True

    def status(self) -> GuestStatus:
        self._call("state")
        return GuestStatus("running" if self.active else "shutoff", self.active, True, False)

    def definitions(self, active: bool | None = None, persistent: bool | None = None) -> list[str]:
        self._call("XMLDesc")
        return [DOMAIN_XML]

    def memory_bytes(self) -> int:
        return 32 * 2**20

    def job(self) -> JobInfo:
        running = self.host.migrating.is_set()
        self._call("jobStats-migrating" if running else "jobStats")
        return JobInfo(active=running, data_total=100 if running else 0, data_processed=0,
                       data_remaining=100 if running else 0, elapsed_ms=0, mem_bps=0,
                       operation="migration-out" if running else "")

    def metadata(self, namespace: str) -> str | None:
        assert namespace == NAMESPACE
        self._call("metadata")
        return self.meta

    def set_metadata(self, namespace: str, prefix: str, element: str | None) -> None:
        self._call("setMetadata")
        self.meta = element

    def abort_job(self) -> None:
        self.aborts += 1
        self._call("abortJob")
        self.host.migrating.clear()
        self.host.aborted.set()

    def resume(self) -> None:
        self._call("resume")

    def set_max_downtime(self, ms: int) -> None:
        self._call("migrateSetMaxDowntime")

    def migrate(self, dest_uri: str, params: dict[str, Any], flags: Any) -> None:
        """migrateToURI3: "runs" until aborted (then fails as libvirt does), unless it hangs outright."""
        self.host.migrating.set()
        self._call("migrateToURI3")
        self.host.aborted.wait()
        self.host.hangs.maybe("migrateToURI3-after-abort")
        raise RuntimeError("operation aborted: migration out job: canceled by client")


class FakeHost:
    def __init__(self, uri: str, hangs: Hangs, guest: bool) -> None:
        self.uri, self.hangs = uri, hangs
        self.calls: list[str] = []
        self.migrating, self.aborted = threading.Event(), threading.Event()
        self.guest = FakeGuest(self) if guest else None
        self.secrets: dict[str, SecretInfo] = {}
        self.values: dict[str, bytes] = {}
        if guest:
            self.secrets[SECRET_UUID] = SecretInfo(SECRET_UUID, "vtpm", "vm1-vtpm", False, False, SECRET_XML)
            self.values[SECRET_UUID] = b"0123456789abcdef0123456789abcdef"
        self.closed = False
        self.hooks: dict[str, Callable[[], None]] = {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        hook = self.hooks.pop(name, None)  # runs once: e.g. send a signal from inside this call
        if hook is not None:
            hook()
        self.hangs.maybe(name)

    def host_uuid(self) -> str:
        return "11111111-1111-4111-8111-" + ("000000000001" if self.guest else "000000000002")

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def find_guest(self, ident: str) -> FakeGuest | None:
        self._call("lookup")
        return self.guest if self.guest is not None and ident in ("vm1", VM_UUID) else None

    def require_guest(self, ident: str) -> FakeGuest:
        g = self.find_guest(ident)
        assert g is not None
        return g

    def guests(self) -> list[FakeGuest]:
        self._call("listAllDomains")
        return [self.guest] if self.guest else []

    def secret_info(self, uuid: str) -> SecretInfo | None:
        self._call("secretLookup")
        return self.secrets.get(uuid)

    def secret_by_usage(self, usage_type: str, usage_id: str) -> SecretInfo | None:
        return next((s for s in self.secrets.values() if (s.usage_type, s.usage_id) == (usage_type, usage_id)), None)

    def secret_usages(self) -> dict[tuple[str, str], str]:
        return {(s.usage_type, s.usage_id or ""): u for u, s in self.secrets.items()}

    def secret_value(self, uuid: str) -> bytearray:
        return bytearray(self.values[uuid])

    def secret_value_if_set(self, uuid: str) -> bytearray | None:
        return bytearray(self.values[uuid]) if uuid in self.values else None

    def define_secret(self, xml: str) -> None:
        self._call("secretDefineXML")
        m = re.search(r"<uuid>([^<]+)</uuid>", xml)
        assert m
        self.secrets[m.group(1)] = SecretInfo(m.group(1), "vtpm", "vm1-vtpm", False, False, xml)

    def set_secret_value(self, uuid: str, value: bytes | bytearray | memoryview) -> None:
        self._call("secretSetValue")
        self.values[uuid] = bytes(value)

    def undefine_secret(self, uuid: str) -> None:
        self._call("secretUndefine")
        self.secrets.pop(uuid, None)
        self.values.pop(uuid, None)


def no_checks(*_args: Any, **_kw: Any) -> Report:
    return Report(findings=())


def hosts(*hung: str, dst_hung: tuple[str, ...] = ()) -> tuple[FakeHost, FakeHost]:
    return FakeHost(SRC, Hangs(*hung), guest=True), FakeHost(DST, Hangs(*dst_hung), guest=False)


def runtime(src: FakeHost, dst: FakeHost, lock_dir: Path, **kw: Any) -> Runtime:
    by_uri = {SRC: src, DST: dst}
    return Runtime(connect=lambda uri: by_uri[uri], lock_dir=lock_dir, **kw)  # type: ignore[arg-type,return-value]


def lock_is_free(lock_dir: Path) -> bool:
    """The domain lock can be taken again (what the next run would do)."""
    from coordinator.steps.locks import domain_lock

    try:
        with domain_lock(lock_dir, VM_UUID, "vm1"):
            return True
    except Exception:
        return False


def run_migrate(src: FakeHost, dst: FakeHost, lock_dir: Path, options: MigrateOptions, **kw: Any) -> Any:
    return flow.migrate("vm1", SRC, DST, options, runtime(src, dst, lock_dir, **kw))
