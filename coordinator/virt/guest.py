"""One domain on one host (virDomain*): state, XML, jobs, migration."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt

T = TypeVar("T")

# VIR_DOMAIN_JOB_OPERATION_* → our names (libvirt ≥ 3.3 reports the operation in job stats).
_JOB_OPERATIONS = {getattr(libvirt, f"VIR_DOMAIN_JOB_OPERATION_{n}"): n.lower().replace("_", "-")
                   for n in ("START", "SAVE", "RESTORE", "MIGRATION_IN", "MIGRATION_OUT", "SNAPSHOT",
                             "SNAPSHOT_REVERT", "DUMP", "BACKUP", "SNAPSHOT_DELETE")
                   if hasattr(libvirt, f"VIR_DOMAIN_JOB_OPERATION_{n}")}

_STATE_NAMES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
                libvirt.VIR_DOMAIN_SHUTOFF: "shutoff", libvirt.VIR_DOMAIN_CRASHED: "crashed",
                libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended", libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
                libvirt.VIR_DOMAIN_BLOCKED: "blocked"}


class CallTimedOut(Exception):
    """A libvirt call did not return within its bound; it is still running in its daemon thread."""

    def __init__(self, what: str, bound_s: float) -> None:
        super().__init__(f"{what} did not return within {bound_s:g} s")
        self.what, self.bound_s = what, bound_s


def call_within(bound_s: float, what: str, fn: Callable[..., T], *args: Any,
                tick: Callable[[], None] | None = None) -> T:
    """``fn(*args)`` — one libvirt call or a short group of them — waited for at most ``bound_s`` seconds;
    its result, or its exception, or ``CallTimedOut``. NOTE: a libvirt call cannot be cancelled (the
    RPC stays outstanding until the daemon answers or keepalive closes the connection), so on a timeout
    the call is left running in a daemon thread that never keeps the process from exiting; a late
    answer is dropped. The waiting thread stays free: ``tick`` runs every 0.1 s while it waits, and a
    KeyboardInterrupt (Ctrl-C in the main thread) reaches the caller at once."""
    box: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as e:  # handed to the waiting thread
            box.append((False, e))
        finally:
            done.set()

    threading.Thread(target=work, daemon=True, name=f"migcoord-call-{what}"[:60]).start()
    # NOTE: real time, like the thread it waits for (a test's fake clock would never reach the bound)
    end = time.monotonic() + bound_s
    while not done.wait(max(0.0, min(0.1, end - time.monotonic()))):
        if tick is not None:
            tick()
        if time.monotonic() >= end:
            raise CallTimedOut(what, bound_s)
    ok, value = box[0]
    if not ok:
        raise value
    return value


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of ``virDomainGetJobStats`` for progress display."""

    active: bool
    data_total: int
    data_processed: int
    data_remaining: int
    elapsed_ms: int
    mem_bps: int
    operation: str = ""  # "migration-out", "migration-in", "backup", "dump", ... ("" when libvirt does not say)

    @property
    def percent(self) -> float:
        return 100.0 * self.data_processed / self.data_total if self.data_total else 0.0


@dataclass(frozen=True)
class GuestStatus:
    """virDomainGetState + virDomainIsPersistent in one snapshot."""

    state: str
    active: bool
    persistent: bool
    postcopy_failed: bool


def _postcopy_failed(st: int, reason: int) -> bool:
    """VIR_DOMAIN_PAUSED_POSTCOPY_FAILED, or VIR_DOMAIN_RUNNING_POSTCOPY_FAILED (libvirt ≥ 8.5)."""
    return ((st == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
            or (st == libvirt.VIR_DOMAIN_RUNNING
                and reason == getattr(libvirt, "VIR_DOMAIN_RUNNING_POSTCOPY_FAILED", -1)))


class Guest:
    """One domain on one host."""

    def __init__(self, dom: Any) -> None:
        self._dom = dom
        self._name: str | None = None

    @property
    def name(self) -> str:
        """virDomainGetName: no round trip, and fixed for this object (a renamed domain is another
        object), so it is asked once (planning thousands of domains asks it tens of thousands of times)."""
        if self._name is None:
            self._name = str(self._dom.name())
        return self._name

    @property
    def uuid(self) -> str:
        return str(self._dom.UUIDString())

    def xml(self, inactive: bool = False) -> str:
        """virDomainGetXMLDesc; with VIR_DOMAIN_XML_INACTIVE for the persistent config."""
        return str(self._dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))

    def migratable_xml(self) -> str:
        """virDomainGetXMLDesc(VIR_DOMAIN_XML_MIGRATABLE): the live definition as the source's libvirt
        formats it for a migration — with the CPU as defined, not as QEMU expanded it."""
        return str(self._dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))

    def definitions(self, active: bool | None = None, persistent: bool | None = None) -> list[str]:
        """The live and the inactive XML (both can reference secrets the other does not). For a
        shut-off domain they are the same document, fetched once. ``active``/``persistent``: what
        the caller already knows, to save a call."""
        if not (self.is_active() if active is None else active):
            return [self.xml(inactive=True)]
        if persistent is None:
            persistent = self.is_persistent()
        return [self.xml()] + ([self.xml(inactive=True)] if persistent else [])

    def is_active(self) -> bool:
        """virDomainIsActive: one call, for the hot paths that need nothing else."""
        return bool(self._dom.isActive())

    def is_persistent(self) -> bool:
        return bool(self._dom.isPersistent())

    def status(self) -> GuestStatus:
        """virDomainGetState + virDomainIsPersistent: everything the checks and verification ask."""
        st, reason = self._dom.state()
        return GuestStatus(state=_STATE_NAMES.get(st, "unknown"),
                           active=st not in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED),
                           persistent=bool(self._dom.isPersistent()),
                           postcopy_failed=_postcopy_failed(st, reason))

    def job(self) -> JobInfo:
        """virDomainGetJobStats(0): the current job, e.g. an outgoing migration. A domain that is
        not running has none (libvirt refuses the call with VIR_ERR_OPERATION_INVALID)."""
        try:
            s = self._dom.jobStats(0)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return JobInfo(active=False, data_total=0, data_processed=0, data_remaining=0, elapsed_ms=0,
                               mem_bps=0)
            # NOTE: on the destination of a running migration libvirt 9.0 refuses job stats
            # (VIR_ERR_OPERATION_UNSUPPORTED "available only on the source host"); the domain is
            # paused with reason VIR_DOMAIN_PAUSED_STARTING_UP, then VIR_DOMAIN_PAUSED_MIGRATION
            # (seen on the lab): that is an incoming migration.
            st, reason = self._dom.state()
            if e.get_error_code() == libvirt.VIR_ERR_OPERATION_UNSUPPORTED and st == libvirt.VIR_DOMAIN_PAUSED \
                    and reason in (libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP):
                return JobInfo(active=True, data_total=0, data_processed=0, data_remaining=0, elapsed_ms=0,
                               mem_bps=0, operation="migration-in")
            raise
        return JobInfo(active=s.get("type", 0) in (libvirt.VIR_DOMAIN_JOB_BOUNDED, libvirt.VIR_DOMAIN_JOB_UNBOUNDED),
                       data_total=s.get("data_total", 0), data_processed=s.get("data_processed", 0),
                       data_remaining=s.get("data_remaining", 0), elapsed_ms=s.get("time_elapsed", 0),
                       mem_bps=s.get("memory_bps", 0),
                       operation=_JOB_OPERATIONS.get(s.get("operation", -1), ""))

    def completed_job(self) -> dict[str, int]:
        """virDomainGetJobStats(VIR_DOMAIN_JOB_STATS_COMPLETED): the statistics of the last completed
        job, e.g. on the destination after an incoming migration (libvirt copies them over in the
        migration cookie). Only the byte and time counters; {} when libvirt has none."""
        try:
            s = self._dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except libvirt.libvirtError:
            return {}
        keys = ("data_processed", "memory_processed", "disk_processed", "time_elapsed", "downtime")
        return {k: int(s[k]) for k in keys if k in s}

    def memory_bytes(self) -> int:
        """Current guest memory (virDomainGetInfo, KiB) — what a migration has to copy."""
        return int(self._dom.info()[2]) * 1024

    def metadata(self, namespace: str) -> str | None:
        """virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT, namespace): the live definition's
        element when the domain runs (VIR_DOMAIN_AFFECT_LIVE), else the persistent one; None when
        absent (VIR_ERR_NO_DOMAIN_METADATA). NOTE: readable while a migration job runs."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if self._dom.isActive() else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        try:
            return str(self._dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, flags))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise

    def set_metadata(self, namespace: str, prefix: str, element: str | None) -> None:
        """virDomainSetMetadata(VIR_DOMAIN_METADATA_ELEMENT, element, prefix, namespace, flags) with
        VIR_DOMAIN_AFFECT_LIVE when running and VIR_DOMAIN_AFFECT_CONFIG when persistent (the
        element travels with a migration, in both definitions); ``None`` removes it. NOTE: libvirt
        waits for the state-change lock, so during another job (a migration) this times out after 30 s."""
        active, persistent = self._dom.isActive(), self._dom.isPersistent()
        flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if active else 0) | \
            (libvirt.VIR_DOMAIN_AFFECT_CONFIG if persistent or not active else 0)
        self._dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, element, prefix if element else None,
                              namespace, flags)

    def abort_job(self) -> None:
        """virDomainAbortJob: cancels an outgoing migration; the VM stays on the source."""
        self._dom.abortJob()

    def set_max_downtime(self, ms: int) -> None:
        """virDomainMigrateSetMaxDowntime(ms): only while a migration job runs."""
        self._dom.migrateSetMaxDowntime(int(ms), 0)

    def suspend(self) -> None:
        """virDomainSuspend: pause the vCPUs (a migration of a paused guest converges; the
        destination resumes it unless VIR_MIGRATE_PAUSED)."""
        self._dom.suspend()

    def resume(self) -> None:
        """virDomainResume."""
        self._dom.resume()

    def start_postcopy(self) -> None:
        """virDomainMigrateStartPostCopy: only valid when migrating with VIR_MIGRATE_POSTCOPY."""
        self._dom.migrateStartPostCopy(0)

    def migrate(self, dest_uri: str, params: dict[str, Any], flags: Iterable[str]) -> None:
        """virDomainMigrateToURI3(dconnuri, params, flags). ``flags`` are names without the
        VIR_MIGRATE_ prefix (e.g. "LIVE", "PEER2PEER"), built by core.params.migration_flags."""
        value = 0
        for f in flags:
            value |= getattr(libvirt, f"VIR_MIGRATE_{f}")
        self._dom.migrateToURI3(dest_uri, params, value)
