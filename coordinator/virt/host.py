"""One libvirt connection (virConnect*): identity, domains, secrets and the facts the checks read."""
from __future__ import annotations

import contextlib
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import libvirt

from coordinator.core.errors import BadInput, HostUnreachable, SecretUnavailable
from coordinator.core.ids import looks_like_uuid
from coordinator.core.maintenance import USAGE_NAME as MAINTENANCE_USAGE
from coordinator.core.model import SecretInfo, wipe_bytes
from coordinator.core.params import KEEPALIVE_COUNT, KEEPALIVE_INTERVAL_S
from coordinator.core.secret_xml import parse_secret_xml
from coordinator.core.uris import check_uri
from .errors import error_summary, is_transient, silence_default_handler
from .guest import Guest

log = logging.getLogger("migcoord")

# libvirt's default event loop, registered and run once per process (``_event_loop``).
_EVENT_LOOP: threading.Thread | None = None
_EVENT_LOOP_LOCK = threading.Lock()


def _event_loop() -> None:
    """virEventRegisterDefaultImpl once per process, and a daemon thread running virEventRunDefaultImpl:
    without a registered event loop libvirt-python has no keepalive (virConnectSetKeepAlive refuses).
    NOTE: must happen before the connection is opened (the remote driver hooks its socket into the
    loop at open). A library caller who registered an event loop of their own first keeps it: libvirt
    ignores a second registration, and this thread then runs an empty default loop (harmless)."""
    global _EVENT_LOOP
    with _EVENT_LOOP_LOCK:
        if _EVENT_LOOP is not None:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except libvirt.libvirtError as e:  # NOTE: not a busy loop if an iteration keeps failing
                    log.debug("libvirt event loop: %s", error_summary(e))
                    threading.Event().wait(1.0)

        _EVENT_LOOP = threading.Thread(target=run, daemon=True, name="migcoord-libvirt-events")
        _EVENT_LOOP.start()


def _keepalive(conn: Any, uri: str) -> None:
    """virConnectSetKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) (core.params says why these). Best
    effort: a driver without keepalive (test:///, some local drivers) refuses, and the connection is
    used as it is."""
    try:
        conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
    except libvirt.libvirtError as e:
        log.info("no keepalive on %s: %s", uri, error_summary(e))


USAGE_TYPES = {
    "volume": libvirt.VIR_SECRET_USAGE_TYPE_VOLUME,
    "ceph": libvirt.VIR_SECRET_USAGE_TYPE_CEPH,
    "iscsi": libvirt.VIR_SECRET_USAGE_TYPE_ISCSI,
    "tls": libvirt.VIR_SECRET_USAGE_TYPE_TLS,
    "vtpm": getattr(libvirt, "VIR_SECRET_USAGE_TYPE_VTPM", 5),
}


class Host:
    """One libvirt connection. Open with ``Host.open(uri)``; close with ``close()`` or ``with``."""

    def __init__(self, uri: str, conn: Any) -> None:
        self.uri = uri
        self._conn = conn
        self._host_uuid: str | None = None

    @classmethod
    def open(cls, uri: str) -> Host:
        """virConnectOpen (read-write) with keepalive on (``_keepalive``: a peer that stops answering
        ends every call on the connection with an error instead of a hang). Connection errors are
        transient for the retry layer."""
        check_uri(uri)
        silence_default_handler()
        _event_loop()
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as e:
            raise HostUnreachable(f"cannot connect to {uri}: {error_summary(e)}",
                                  hint="is libvirtd running there and the URI right?",
                                  transient=is_transient(e)) from e
        _keepalive(conn, uri)
        return cls(uri, conn)

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()

    def __enter__(self) -> Host:
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
        if looks_like_uuid(ident):
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

    def require_guest(self, ident: str) -> Guest:
        """``find_guest``, or BadInput naming the domain and the host: the one "not found" message."""
        g = self.find_guest(ident)
        if g is None:
            raise BadInput(f"domain {ident!r} not found on {self.uri}",
                           hint="give its name, UUID or id as virsh list shows it")
        return g

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

    def secret_value(self, uuid: str) -> bytearray:
        """virSecretGetValue. Private secrets refuse (VIR_ERR_INVALID_SECRET / OPERATION_DENIED).
        A bytearray the caller wipes: libvirt-python's ``bytes`` is copied and zeroed (``_taken``)."""
        try:
            return _taken(self._conn.secretLookupByUUIDString(uuid).value(0))
        except libvirt.libvirtError as e:
            raise SecretUnavailable(f"secret {uuid} value cannot be read on {self.uri}: "
                                    f"{error_summary(e)}") from None

    def secret_value_if_set(self, uuid: str) -> bytearray | None:
        """virSecretGetValue, None when the secret is defined but has no value (VIR_ERR_NO_SECRET
        "does not have a value": e.g. a run that died between virSecretDefineXML and SetValue).
        A bytearray the caller wipes, as ``secret_value``."""
        try:
            return _taken(self._conn.secretLookupByUUIDString(uuid).value(0))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_SECRET and "value" in (e.get_error_message() or ""):
                return None
            raise SecretUnavailable(f"secret {uuid} value cannot be read on {self.uri}: "
                                    f"{error_summary(e)}") from None

    def define_secret(self, xml: str) -> None:
        """virSecretDefineXML (the XML carries UUID, usage and the ephemeral/private flags)."""
        self._conn.secretDefineXML(xml, 0)

    def set_secret_value(self, uuid: str, value: bytes | bytearray | memoryview) -> None:
        """virSecretSetValue: the bytes go over the libvirt connection only (never argv/disk here).
        NOTE: libvirt-python takes ``bytes`` only (``z#``: no bytearray/memoryview), so one copy is
        made for the call and zeroed right after it (``core.model.wipe_bytes``)."""
        copy = bytes(value)
        try:
            self._conn.secretLookupByUUIDString(uuid).setValue(copy, 0)
        finally:
            wipe_bytes(copy)

    def undefine_secret(self, uuid: str) -> None:
        try:
            self._conn.secretLookupByUUIDString(uuid).undefine()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise

    def secret_uuids(self) -> list[str]:
        return [s.lower() for s in self._conn.listSecrets()]

    def secret_infos(self) -> list[SecretInfo]:
        """Every secret's definition: virConnectListAllSecrets, then virSecretGetXMLDesc per secret (never
        the value). A secret undefined between the two calls is left out."""
        out = []
        for sec in self._conn.listAllSecrets(0):
            try:
                out.append(parse_secret_xml(sec.XMLDesc(0)))
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                    raise
        return out

    def secret_usages(self) -> dict[tuple[str, str], str]:
        """(usage type, usage id) → UUID of every secret with a usage: virConnectListAllSecrets, one round
        trip (the usage type and id travel with each virSecret object; reading them asks nothing more)."""
        names = {v: k for k, v in USAGE_TYPES.items()}
        out = {}
        for sec in self._conn.listAllSecrets(0):
            kind = names.get(sec.usageType())
            if kind is not None and sec.usageID():
                out[(kind, sec.usageID())] = sec.UUIDString().lower()
        return out

    # -- maintenance marker (core.maintenance) --------------------------
    def maintenance_marker(self) -> str | None:
        """The description of the secret with usage tls/``migcoord-maintenance`` (virSecretLookupByUsage
        + virSecretGetXMLDesc); None when the host is not marked."""
        try:
            sec = self._conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, MAINTENANCE_USAGE)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                return None
            raise
        return ET.fromstring(sec.XMLDesc(0)).findtext("description") or ""

    def set_maintenance_marker(self, description: str | None) -> None:
        """virSecretDefineXML of the marker (persistent, no value), or its virSecretUndefine for None.
        Redefining keeps the UUID libvirt chose (the usage identifies it)."""
        if description is None:
            try:
                self._conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, MAINTENANCE_USAGE).undefine()
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                    raise
            return
        root = ET.Element("secret", {"ephemeral": "no", "private": "yes"})
        ET.SubElement(root, "description").text = description
        try:
            old = self._conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, MAINTENANCE_USAGE)
            ET.SubElement(root, "uuid").text = old.UUIDString()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise
        usage = ET.SubElement(root, "usage", {"type": "tls"})
        ET.SubElement(usage, "name").text = MAINTENANCE_USAGE
        self._conn.secretDefineXML(ET.tostring(root, encoding="unicode"), 0)

    def inbound_migration_memory(self) -> int:
        """Bytes of guest memory currently migrating IN to this host, from anyone (virDomainGetJobStats
        operation VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN on the active domains). NOTE: the incoming
        QEMU touches its RAM only as pages arrive, so free memory does not show it yet."""
        total = 0
        for d in self._conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            g = Guest(d)
            try:
                if g.job().operation == "migration-in":
                    total += g.memory_bytes()
            except libvirt.libvirtError:  # it finished or went away meanwhile
                continue
        return total

    # -- pre-flight facts (checks/) ------------------------------------
    def hypervisor_version(self) -> int:
        """virConnectGetVersion: the QEMU version as major*1,000,000 + minor*1,000 + release."""
        return self._conn.getVersion()

    def capabilities(self) -> str:
        """virConnectGetCapabilities → XML (the host's guests: arches, emulators, machine types)."""
        return str(self._conn.getCapabilities())

    def domain_capabilities(self, emulator: str | None = None, arch: str | None = None,
                            machine: str | None = None, virttype: str | None = None) -> str:
        """virConnectGetDomainCapabilities(emulatorbin, arch, machine, virttype, 0) → XML."""
        return self._conn.getDomainCapabilities(emulator, arch, machine, virttype, 0)

    def compare_cpu(self, cpu_xml: str, emulator: str | None = None, arch: str | None = None,
                    machine: str | None = None, virttype: str | None = None) -> tuple[str, str]:
        """virConnectCompareHypervisorCPU with VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE, so that an
        incompatible CPU comes back with libvirt's reason (VIR_ERR_CPU_INCOMPATIBLE) instead of a bare 0.
        Returns ("identical" | "superset" | "incompatible", detail)."""
        return _compared(lambda: self._conn.compareHypervisorCPU(
            emulator, arch, machine, virttype, cpu_xml, libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE))

    def compare_host_cpu(self, cpu_xml: str) -> tuple[str, str]:
        """virConnectCompareCPU with VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE: the guest CPU against this
        host's own CPU — what libvirt 9.0 compares a check='partial' CPU with when it starts QEMU
        (qemuProcessUpdateGuestCPU, HOST_CPU_FULL). NOTE: compareHypervisorCPU compares with the
        hypervisor's host-model CPU instead and calls kvm64 incompatible on a host where it starts.
        Returns ("identical" | "superset" | "incompatible", detail)."""
        return _compared(lambda: self._conn.compareCPU(cpu_xml, libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE))

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
            return str(self._conn.storagePoolLookupByTargetPath(path).name())
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
            path = str(vol.path())
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


def _compared(compare: Callable[[], int]) -> tuple[str, str]:
    """Run one of libvirt's CPU comparisons made with VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE, so that an
    incompatible CPU comes back with libvirt's reason (VIR_ERR_CPU_INCOMPATIBLE) instead of a bare 0."""
    try:
        r = compare()
    except libvirt.libvirtError as e:
        msg = (e.get_error_message() or str(e)).strip()
        if e.get_error_code() == libvirt.VIR_ERR_CPU_INCOMPATIBLE:
            return "incompatible", msg
        # NOTE: a feature this libvirt's cpu_map does not know (a guest started on a newer release, e.g.
        # 11.3's overflow-recov going back to 9.0): its start refuses the same CPU the same way
        # (qemuProcessStartValidate, "unknown CPU feature: ...").
        if "unknown CPU feature" in msg:
            return "incompatible", msg
        raise
    return {libvirt.VIR_CPU_COMPARE_IDENTICAL: "identical", libvirt.VIR_CPU_COMPARE_SUPERSET: "superset",
            libvirt.VIR_CPU_COMPARE_INCOMPATIBLE: "incompatible"}.get(r, "error"), ""


def _taken(value: bytes) -> bytearray:
    """virSecretGetValue's result as a bytearray the caller can wipe; libvirt-python's ``bytes`` (a
    new object, referenced only here) is zeroed once copied."""
    try:
        return bytearray(value)
    finally:
        wipe_bytes(value)
