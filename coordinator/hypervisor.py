"""The only module that imports libvirt (house rule 1).

``Host`` wraps one connection, ``Guest`` one domain. Symbolic flag names from
``params.py`` become ``VIR_*`` constants here. ``classify`` is the one place that
decides whether a ``libvirtError`` is worth retrying (house rule 3).
"""
from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import libvirt

from .errors import BadInput, HostUnreachable, SecretUnavailable
from .model import SecretInfo


class Retry(str, enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


# (error code, error domain or None for "any domain") -> why it is transient.
# Everything not listed is PERMANENT: we never retry blindly. A wrong secret value
# (VIR_ERR_OPERATION_FAILED from QEMU), a missing secret (VIR_ERR_NO_SECRET), an unsafe
# migration, an incompatible CPU... would fail the same way again.
TRANSIENT_ERRORS: dict[tuple[int, int | None], str] = {
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC): "cannot connect / connection reset",
    (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC): "RPC failure (peer went away)",
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC): "client socket is closed",
    (libvirt.VIR_ERR_NO_CONNECT, None): "no connection to the hypervisor",
    (libvirt.VIR_ERR_OPERATION_TIMEOUT, None): "cannot acquire state change lock (job busy)",
    (libvirt.VIR_ERR_AUTH_UNAVAILABLE, None): "authentication backend temporarily unavailable",
    (libvirt.VIR_ERR_NO_SERVER, None): "daemon server not (yet) available",
}


def classify_code(code: int, domain: int) -> Retry:
    """Pure decision on (code, domain): TRANSIENT only when listed in TRANSIENT_ERRORS."""
    if (code, domain) in TRANSIENT_ERRORS or (code, None) in TRANSIENT_ERRORS:
        return Retry.TRANSIENT
    return Retry.PERMANENT


def classify(exc: BaseException) -> Retry:
    """Classify any exception; only libvirt errors can be transient."""
    if isinstance(exc, libvirt.libvirtError):
        return classify_code(exc.get_error_code() or 0, exc.get_error_domain() or 0)
    return Retry.PERMANENT


def is_transient(exc: BaseException) -> bool:
    """The predicate handed to tenacity's ``retry_if_exception``."""
    return classify(exc) is Retry.TRANSIENT


def error_summary(exc: BaseException) -> str:
    """One line with libvirt's message and its code/domain names (no secret can be in it:
    libvirt never puts secret values in error messages)."""
    if isinstance(exc, libvirt.libvirtError):
        code, dom = exc.get_error_code(), exc.get_error_domain()
        msg = (exc.get_error_message() or str(exc)).strip().splitlines()[0]
        return f"{msg} [{_const_name('VIR_ERR_', code)}/{_const_name('VIR_FROM_', dom)}]"
    return str(exc)


def _const_name(prefix: str, value: int | None) -> str:
    for k in dir(libvirt):
        if k.startswith(prefix) and getattr(libvirt, k) == value:
            return k
    return str(value)


_URI_RE = re.compile(r"^qemu(\+[a-z0-9]+)?://[^/\s]*/(system|session)(\?\S*)?$")


def check_uri(uri: str) -> str:
    """Reject what cannot be a QEMU libvirt URI before any connection attempt."""
    if not _URI_RE.match(uri or ""):
        raise BadInput(f"not a libvirt QEMU URI: {uri!r}",
                       hint="use e.g. qemu:///system, qemu+ssh://HOST/system, qemu+tls://HOST/system")
    return uri


_SILENCED = False


def _silence_default_handler() -> None:
    # NOTE: libvirt's default error handler prints every error to stderr, even handled ones.
    global _SILENCED
    if not _SILENCED:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _SILENCED = True


USAGE_TYPES = {
    "volume": libvirt.VIR_SECRET_USAGE_TYPE_VOLUME,
    "ceph": libvirt.VIR_SECRET_USAGE_TYPE_CEPH,
    "iscsi": libvirt.VIR_SECRET_USAGE_TYPE_ISCSI,
    "tls": libvirt.VIR_SECRET_USAGE_TYPE_TLS,
    "vtpm": getattr(libvirt, "VIR_SECRET_USAGE_TYPE_VTPM", 5),
}

# XML element under <usage> that carries the usage id, per usage type (formatsecret).
USAGE_ID_ELEMENT = {"volume": "volume", "ceph": "name", "iscsi": "target", "tls": "name", "vtpm": "name"}


def parse_secret_xml(xml: str) -> SecretInfo:
    root = ET.fromstring(xml)
    usage = root.find("usage")
    utype = usage.get("type", "none") if usage is not None else "none"
    uid = usage.findtext(USAGE_ID_ELEMENT.get(utype, "name")) if usage is not None else None
    return SecretInfo(uuid=(root.findtext("uuid") or "").lower(), usage_type=utype, usage_id=uid,
                      ephemeral=root.get("ephemeral") == "yes", private=root.get("private") == "yes",
                      xml=xml)


_JOB_OPERATIONS = {
    getattr(libvirt, "VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT", 3): "migration-out",
    getattr(libvirt, "VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN", 2): "migration-in",
}


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of ``virDomainGetJobStats`` for progress display."""

    active: bool
    data_total: int
    data_processed: int
    data_remaining: int
    elapsed_ms: int
    mem_bps: int
    operation: str = ""  # "migration-out", "migration-in", ... ("" when libvirt does not say)

    @property
    def percent(self) -> float:
        return 100.0 * self.data_processed / self.data_total if self.data_total else 0.0


_STATE_NAMES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
                libvirt.VIR_DOMAIN_SHUTOFF: "shutoff", libvirt.VIR_DOMAIN_CRASHED: "crashed",
                libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended", libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
                libvirt.VIR_DOMAIN_BLOCKED: "blocked"}


def _postcopy_failed(st: int, reason: int) -> bool:
    """VIR_DOMAIN_PAUSED_POSTCOPY_FAILED, or VIR_DOMAIN_RUNNING_POSTCOPY_FAILED (libvirt ≥ 8.5)."""
    return ((st == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
            or (st == libvirt.VIR_DOMAIN_RUNNING
                and reason == getattr(libvirt, "VIR_DOMAIN_RUNNING_POSTCOPY_FAILED", -1)))


@dataclass(frozen=True)
class GuestStatus:
    state: str
    active: bool
    persistent: bool
    postcopy_failed: bool


class Guest:
    """One domain on one host."""

    def __init__(self, dom: Any) -> None:
        self._dom = dom

    @property
    def name(self) -> str:
        return self._dom.name()

    @property
    def uuid(self) -> str:
        return self._dom.UUIDString()

    def xml(self, inactive: bool = False) -> str:
        """virDomainGetXMLDesc; with VIR_DOMAIN_XML_INACTIVE for the persistent config."""
        return self._dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)

    def definitions(self, active: bool | None = None, persistent: bool | None = None) -> list[str]:
        """The live and the inactive XML (both can reference secrets the other does not). For a
        shut-off domain they are the same document, fetched once. ``active``/``persistent``: what
        the caller already knows, to save a call."""
        if not (self.is_active() if active is None else active):
            return [self.xml(inactive=True)]
        if persistent is None:
            persistent = self.is_persistent()
        return [self.xml()] + ([self.xml(inactive=True)] if persistent else [])

    def state(self) -> str:
        st, _reason = self._dom.state()
        return _STATE_NAMES.get(st, "unknown")

    def is_active(self) -> bool:
        return bool(self._dom.isActive())

    def is_persistent(self) -> bool:
        return bool(self._dom.isPersistent())

    def job(self) -> JobInfo:
        """virDomainGetJobStats(0): the current job, e.g. an outgoing migration."""
        s = self._dom.jobStats(0)
        return JobInfo(active=s.get("type", 0) != libvirt.VIR_DOMAIN_JOB_NONE,
                       data_total=s.get("data_total", 0), data_processed=s.get("data_processed", 0),
                       data_remaining=s.get("data_remaining", 0), elapsed_ms=s.get("time_elapsed", 0),
                       mem_bps=s.get("memory_bps", 0),
                       operation=_JOB_OPERATIONS.get(s.get("operation", -1), ""))

    # -- pre-flight facts (checks/) ------------------------------------
    def status(self) -> "GuestStatus":
        """One snapshot for the checks: virDomainGetState + virDomainIsPersistent (two calls
        instead of one per question)."""
        st, reason = self._dom.state()
        return GuestStatus(state=_STATE_NAMES.get(st, "unknown"),
                           active=st not in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED),
                           persistent=bool(self._dom.isPersistent()),
                           postcopy_failed=_postcopy_failed(st, reason))

    def state_reason(self) -> tuple[str, int]:
        """virDomainGetState: (state name as ``state()``, libvirt's raw reason code)."""
        _st, reason = self._dom.state()
        return self.state(), reason

    def postcopy_failed(self) -> bool:
        """True in a failed post-copy state (VIR_DOMAIN_PAUSED_POSTCOPY_FAILED, or
        VIR_DOMAIN_RUNNING_POSTCOPY_FAILED since libvirt 8.5): such a domain must be recovered, not migrated."""
        return _postcopy_failed(*self._dom.state())

    def job_type(self, active: bool | None = None) -> str:
        """virDomainGetJobStats(0) "type": "none" | "bounded" | "unbounded" | ... . An inactive domain
        has no job (libvirt refuses the call with VIR_ERR_OPERATION_INVALID; we answer "none").
        ``active``: what the caller already knows, to save a virDomainIsActive."""
        if not (self._dom.isActive() if active is None else active):
            return "none"
        try:
            t = self._dom.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE)
        except libvirt.libvirtError as e:
            # NOTE: the domain can stop between isActive() and jobStats(); that is "no job".
            if e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return "none"
            raise
        return {libvirt.VIR_DOMAIN_JOB_NONE: "none", libvirt.VIR_DOMAIN_JOB_BOUNDED: "bounded",
                libvirt.VIR_DOMAIN_JOB_UNBOUNDED: "unbounded", libvirt.VIR_DOMAIN_JOB_COMPLETED: "completed",
                libvirt.VIR_DOMAIN_JOB_FAILED: "failed",
                libvirt.VIR_DOMAIN_JOB_CANCELLED: "cancelled"}.get(t, str(t))


    def memory_bytes(self) -> int:
        """Current guest memory (virDomainGetInfo, KiB) — what a migration has to copy."""
        return int(self._dom.info()[2]) * 1024

    def abort_job(self) -> None:
        """virDomainAbortJob: cancels an outgoing migration; the VM stays on the source."""
        self._dom.abortJob()

    def start_postcopy(self) -> None:
        """virDomainMigrateStartPostCopy: only valid when migrating with VIR_MIGRATE_POSTCOPY."""
        self._dom.migrateStartPostCopy(0)

    def migrate(self, dest_uri: str, params: dict[str, Any], flags: Iterable[str]) -> None:
        """virDomainMigrateToURI3(dconnuri, params, flags). ``flags`` are names without the
        VIR_MIGRATE_ prefix (e.g. "LIVE", "PEER2PEER"), built by params.migration_flags."""
        value = 0
        for f in flags:
            value |= getattr(libvirt, f"VIR_MIGRATE_{f}")
        self._dom.migrateToURI3(dest_uri, params, value)


class Host:
    """One libvirt connection. Open with ``Host.open(uri)``; close with ``close()`` or ``with``."""

    def __init__(self, uri: str, conn: Any) -> None:
        self.uri = uri
        self._conn = conn
        self._host_uuid: str | None = None

    @classmethod
    def open(cls, uri: str) -> "Host":
        """virConnectOpen (read-write). Connection errors are transient for the retry layer."""
        check_uri(uri)
        _silence_default_handler()
        try:
            return cls(uri, libvirt.open(uri))
        except libvirt.libvirtError as e:
            raise HostUnreachable(f"cannot connect to {uri}: {error_summary(e)}",
                                  hint="is libvirtd running there and the URI right?",
                                  transient=is_transient(e)) from e

    def close(self) -> None:
        try:
            self._conn.close()
        except libvirt.libvirtError:
            pass

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity -------------------------------------------------------
    def host_uuid(self) -> str:
        """The host UUID from virConnectGetCapabilities, fetched once per connection."""
        if self._host_uuid is None:
            root = ET.fromstring(self._conn.getCapabilities())
            self._host_uuid = (root.findtext("host/uuid") or "").lower()
        return self._host_uuid

    def hostname(self) -> str:
        return self._conn.getHostname()

    def lib_version(self) -> int:
        return self._conn.getLibVersion()

    def alive(self) -> bool:
        try:
            return bool(self._conn.isAlive())
        except libvirt.libvirtError:
            return False

    # -- domains --------------------------------------------------------
    def find_guest(self, ident: str) -> Guest | None:
        """Like virsh: by name, then UUID, then numeric id. None when absent."""
        lookups: list[Callable[[], Any]] = [lambda: self._conn.lookupByName(ident)]
        if re.fullmatch(r"[0-9a-fA-F-]{32,36}", ident):
            lookups.append(lambda: self._conn.lookupByUUIDString(ident))
        if ident.isdigit():
            lookups.append(lambda: self._conn.lookupByID(int(ident)))
        for lookup in lookups:
            try:
                return Guest(lookup())
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return None

    def domain_index(self) -> dict[str, tuple[str, str]]:
        """One virConnectListAllDomains: {uuid: (name, state)} and {name: (uuid, state)} merged,
        for checks that would otherwise look every domain up by name and by UUID."""
        index: dict[str, tuple[str, str]] = {}
        # NOTE: two listings by flag give active/inactive without one state call per domain.
        for flag, state in ((libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE, "active"),
                            (libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE, "shutoff")):
            for d in self._conn.listAllDomains(flag):
                name, uuid = d.name(), d.UUIDString()
                index[uuid] = (name, state)
                index[name] = (uuid, state)
        return index

    def guests(self) -> list[Guest]:
        return [Guest(d) for d in self._conn.listAllDomains(0)]

    def guests_by_state(self) -> list[tuple[Guest, bool, bool]]:
        """(guest, active, persistent) for every domain from three listings by flag, instead of
        two calls per domain (planning hundreds of domains)."""
        active = {d.UUIDString(): d for d in self._conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
        persistent = {d.UUIDString() for d in self._conn.listAllDomains(
            libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE | libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)}
        inactive = self._conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE)
        out = [(Guest(d), True, u in persistent) for u, d in active.items()]
        out += [(Guest(d), False, True) for d in inactive]  # an inactive domain is always persistent
        return out

    # -- secrets --------------------------------------------------------
    def secret_info(self, uuid: str) -> SecretInfo | None:
        """virSecretLookupByUUIDString + virSecretGetXMLDesc; None when not defined."""
        try:
            return parse_secret_xml(self._conn.secretLookupByUUIDString(uuid).XMLDesc(0))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                return None
            raise

    def secret_by_usage(self, usage_type: str, usage_id: str) -> SecretInfo | None:
        """virSecretLookupByUsage; None when no secret has that usage."""
        if usage_type not in USAGE_TYPES:
            raise BadInput(f"unknown secret usage type {usage_type!r}")
        try:
            sec = self._conn.secretLookupByUsage(USAGE_TYPES[usage_type], usage_id)
            return parse_secret_xml(sec.XMLDesc(0))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                return None
            raise

    def secret_value(self, uuid: str) -> bytes:
        """virSecretGetValue. Private secrets refuse (VIR_ERR_INVALID_SECRET / OPERATION_DENIED)."""
        try:
            return self._conn.secretLookupByUUIDString(uuid).value(0)
        except libvirt.libvirtError as e:
            raise SecretUnavailable(f"secret {uuid} value cannot be read on {self.uri}: "
                                    f"{error_summary(e)}") from None

    def define_secret(self, xml: str) -> None:
        """virSecretDefineXML (the XML carries UUID, usage and the ephemeral/private flags)."""
        self._conn.secretDefineXML(xml, 0)

    def set_secret_value(self, uuid: str, value: bytes) -> None:
        """virSecretSetValue: the bytes go over the libvirt connection only (never argv/disk here)."""
        self._conn.secretLookupByUUIDString(uuid).setValue(bytes(value), 0)

    def undefine_secret(self, uuid: str) -> None:
        try:
            self._conn.secretLookupByUUIDString(uuid).undefine()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise

    def secret_uuids(self) -> list[str]:
        return [s.lower() for s in self._conn.listSecrets()]

    # -- pre-flight facts (checks/) ------------------------------------
    def hypervisor_version(self) -> int:
        """virConnectGetVersion: the QEMU version as major*1,000,000 + minor*1,000 + release."""
        return self._conn.getVersion()

    def domain_capabilities(self, emulator: str | None = None, arch: str | None = None,
                            machine: str | None = None, virttype: str | None = None) -> str:
        """virConnectGetDomainCapabilities(emulatorbin, arch, machine, virttype, 0) → XML."""
        return self._conn.getDomainCapabilities(emulator, arch, machine, virttype, 0)

    def compare_cpu(self, cpu_xml: str, emulator: str | None = None, arch: str | None = None,
                    machine: str | None = None, virttype: str | None = None) -> tuple[str, str]:
        """virConnectCompareHypervisorCPU with VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE, so that an
        incompatible CPU comes back with libvirt's reason (VIR_ERR_CPU_INCOMPATIBLE) instead of a bare 0.
        Returns ("identical" | "superset" | "incompatible", detail)."""
        try:
            r = self._conn.compareHypervisorCPU(emulator, arch, machine, virttype, cpu_xml,
                                                libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_CPU_INCOMPATIBLE:
                return "incompatible", (e.get_error_message() or str(e)).strip()
            raise
        return {libvirt.VIR_CPU_COMPARE_IDENTICAL: "identical", libvirt.VIR_CPU_COMPARE_SUPERSET: "superset",
                libvirt.VIR_CPU_COMPARE_INCOMPATIBLE: "incompatible"}.get(r, "error"), ""

    def compare_host_cpu(self, cpu_xml: str) -> tuple[str, str]:
        """virConnectCompareCPU with VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE: the guest CPU against this
        host's own CPU — what libvirt 9.0 compares a check='partial' CPU with when it starts QEMU
        (qemuProcessUpdateGuestCPU, HOST_CPU_FULL). NOTE: compareHypervisorCPU compares with the
        hypervisor's host-model CPU instead and calls kvm64 incompatible on a host where it starts.
        Returns ("identical" | "superset" | "incompatible", detail)."""
        try:
            r = self._conn.compareCPU(cpu_xml, libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_CPU_INCOMPATIBLE:
                return "incompatible", (e.get_error_message() or str(e)).strip()
            raise
        return {libvirt.VIR_CPU_COMPARE_IDENTICAL: "identical", libvirt.VIR_CPU_COMPARE_SUPERSET: "superset",
                libvirt.VIR_CPU_COMPARE_INCOMPATIBLE: "incompatible"}.get(r, "error"), ""

    def free_memory(self) -> int:
        """virNodeGetFreeMemory: free host memory in bytes (all NUMA cells)."""
        return int(self._conn.getFreeMemory())

    def network_state(self, name: str) -> str | None:
        """virNetworkLookupByName + isActive: "active" | "inactive", None when not defined."""
        return _object_state(lambda: self._conn.networkLookupByName(name), libvirt.VIR_ERR_NO_NETWORK)

    def pool_state(self, name: str) -> str | None:
        """virStoragePoolLookupByName + isActive: "active" | "inactive", None when not defined."""
        return _object_state(lambda: self._conn.storagePoolLookupByName(name), libvirt.VIR_ERR_NO_STORAGE_POOL)

    def pool_by_target_path(self, path: str) -> str | None:
        """virStoragePoolLookupByTargetPath: the name of the pool whose target path is ``path`` (what
        libvirt uses to pre-create a copied disk), None when no pool covers it."""
        try:
            return self._conn.storagePoolLookupByTargetPath(path).name()
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                return None
            raise

    def volume_source(self, pool: str, volume: str) -> tuple[str, str] | None:
        """virStorageVolLookupByName + virStorageVolGetPath/GetInfo: (path, actual disk type: file |
        block | dir | network) of a pool volume, None when the pool or volume is not there."""
        try:
            vol = self._conn.storagePoolLookupByName(pool).storageVolLookupByName(volume)
            kind = vol.info()[0]
            path = vol.path()
        except libvirt.libvirtError as e:
            if e.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_NO_STORAGE_VOL,
                                      libvirt.VIR_ERR_OPERATION_INVALID):
                return None
            raise
        return path, {libvirt.VIR_STORAGE_VOL_BLOCK: "block", libvirt.VIR_STORAGE_VOL_DIR: "dir",
                      libvirt.VIR_STORAGE_VOL_NETWORK: "network",
                      libvirt.VIR_STORAGE_VOL_NETDIR: "network"}.get(kind, "file")


def _object_state(lookup: Callable[[], Any], not_found: int) -> str | None:
    """"active" | "inactive" for a looked-up libvirt object (network, pool), None when undefined."""
    try:
        obj = lookup()
    except libvirt.libvirtError as e:
        if e.get_error_code() == not_found:
            return None
        raise
    return "active" if obj.isActive() else "inactive"
