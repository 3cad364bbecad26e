"""Find every libvirt secret a domain XML depends on. Pure: stdlib ElementTree, no libvirt, no I/O.

A migration only succeeds if every secret the domain references also exists on the
destination, so this module must not miss a reference: it walks each place libvirt's
formatdomain / formatstorageencryption docs allow one, including nested backing chains
and block-job mirrors, and nothing else (status-XML private data is not a reference).

Location format (``SecretRef.location``): an XPath-like path from ``/domain`` (also for
``<domstatus>`` input, whose inner ``<domain>`` is what is read). ``disk``, ``hostdev``,
``tpm`` and ``backingStore`` always carry a 1-based ``[n]`` among same-tag siblings;
any other element carries ``[n]`` only when its parent has several children with its
tag (e.g. RBD layered encryption's ``secret[1]``, ``secret[2]``). The vTPM attribute
form ends in ``/@secret``. Example: ``/domain/devices/disk[2]/source/encryption/secret``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .parse import HINT_XML, domain_root
from ..errors import BadInput
from ..ids import canonical_uuid
from ..model import SecretKind, SecretRef

__all__ = ["secret_refs", "refs_of", "unique_secret_refs", "union_refs", "union_of", "domain_identity"]

_ALWAYS_INDEXED = frozenset({"disk", "hostdev", "tpm", "backingStore"})
# formatsecret: the usage categories a secret can have.
_USAGE_TYPES = frozenset({"ceph", "iscsi", "volume", "vtpm", "tls"})
# Elements of a storage source that may hold a secret or a further storage source.
_STORAGE_TAGS = frozenset({"encryption", "auth", "source", "backingStore", "mirror", "dataStore"})


class _Ctx(NamedTuple):
    """What a secret found below a device inherits from it."""

    target: str | None
    auth_kind: SecretKind


def secret_refs(domain_xml: str) -> list[SecretRef]:
    """Every secret reference in the domain XML, in document order, duplicates kept.

    Duplicates are kept so each use site can be reported; de-duplicate with
    ``unique_secret_refs``. Raises ``BadInput`` on malformed XML or secret elements.
    """
    return refs_of(domain_root(domain_xml))


def refs_of(dom: ET.Element) -> list[SecretRef]:
    """``secret_refs`` of a parsed ``<domain>`` element (``domain_root``), for callers that
    read other things from the same document (``document``), so it is parsed once."""
    refs: list[SecretRef] = []
    # formatdomain "Operating system booting" / BIOS bootloader: <nvram type='network'> (8.5.0).
    for os_el, os_path in _kids(dom, "/domain", "os"):
        for nvram, path in _kids(os_el, os_path, "nvram"):
            refs += _storage(nvram, path, _Ctx("nvram", SecretKind.NVRAM_AUTH))
    for devices, dev_path in _kids(dom, "/domain", "devices"):
        for dev, path in _kids(devices, dev_path):
            if dev.tag == "disk":  # formatdomain "Hard drives, floppy disks, CDROMs"
                refs += _storage(dev, path, _Ctx(_attr(dev.find("target"), "dev"), SecretKind.DISK_AUTH))
            elif dev.tag == "hostdev":  # formatdomain "Host device assignment": SCSI over iSCSI
                refs += _storage(dev, path, _Ctx(_hostdev_target(dev), SecretKind.HOSTDEV_AUTH))
            elif dev.tag == "tpm":  # formatdomain "TPM device": emulator state encryption
                refs += _tpm(dev, path)
    return refs


def unique_secret_refs(refs: Iterable[SecretRef]) -> list[SecretRef]:
    """Keep the first reference per ``SecretRef.key``: one secret, one plan entry."""
    seen: set[tuple[str, str]] = set()
    out = []
    for ref in refs:
        if ref.key not in seen:
            seen.add(ref.key)
            out.append(ref)
    return out


def union_refs(*xmls: str) -> list[SecretRef]:
    """Refs of several XMLs (live and inactive), de-duplicated by (key, location), first kept.

    Both definitions matter: the live one is migrated now, the inactive one is what the
    destination will boot next time, and either may reference a secret the other does not.
    """
    return union_of(secret_refs(xml) for xml in xmls)


def union_of(ref_lists: Iterable[Iterable[SecretRef]]) -> list[SecretRef]:
    """``union_refs`` of reference lists already found (one per definition)."""
    seen: set[tuple[tuple[str, str], str]] = set()
    out = []
    for refs in ref_lists:
        for ref in refs:
            if (ref.key, ref.location) not in seen:
                seen.add((ref.key, ref.location))
                out.append(ref)
    return out


def domain_identity(domain_xml: str) -> tuple[str, str]:
    """(name, canonical uuid) of the domain, so callers need not parse the XML themselves."""
    dom = domain_root(domain_xml)
    name = (dom.findtext("name") or "").strip()
    if not name:
        raise BadInput("domain XML has no <name> at /domain/name", hint=HINT_XML)
    raw = dom.findtext("uuid")
    if raw is None:
        raise BadInput("domain XML has no <uuid> at /domain/uuid", hint=HINT_XML)
    return name, canonical_uuid(raw, "UUID at /domain/uuid:")


# ---- parsing -------------------------------------------------------------------------


def _kids(parent: ET.Element, path: str, tag: str | None = None) -> Iterator[tuple[ET.Element, str]]:
    """Children (optionally of one tag) with their location, per the module's index rule."""
    counts: dict[str, int] = {}
    for child in parent:
        counts[child.tag] = counts.get(child.tag, 0) + 1
    seen: dict[str, int] = {}
    for child in parent:
        if not isinstance(child.tag, str) or (tag is not None and child.tag != tag):
            continue  # comments / processing instructions, or another tag
        seen[child.tag] = seen.get(child.tag, 0) + 1
        indexed = child.tag in _ALWAYS_INDEXED or counts[child.tag] > 1
        yield child, f"{path}/{child.tag}[{seen[child.tag]}]" if indexed else f"{path}/{child.tag}"


def _attr(el: ET.Element | None, name: str) -> str | None:
    return None if el is None else el.get(name)


# ---- the places a secret can be referenced -------------------------------------------


def _storage(el: ET.Element, path: str, ctx: _Ctx) -> list[SecretRef]:
    """Secrets of one storage source (disk, backingStore, mirror, dataStore, nvram, hostdev).

    formatdomain "Hard drives": <encryption> and <auth> sit either directly in <disk>
    (legacy) or in <source> (since 3.9.0); <backingStore> nests to any depth and
    <mirror> (block copy) has its own source and chain. <source><dataStore> (qcow2
    data-file) is a storage source too. <reservations>, <cookies>, <ssl>, tls='yes' and
    status-only <privateData> are not secret references and are not descended into.
    """
    refs: list[SecretRef] = []
    for child, cpath in _kids(el, path):
        if child.tag not in _STORAGE_TAGS:
            continue
        if child.tag == "encryption":  # formatstorageencryption: luks, luks2, luks-any, qcow
            refs += [_ref(s, p, SecretKind.DISK_ENCRYPTION, "volume", ctx.target)
                     for s, p in _kids(child, cpath, "secret")]
        elif child.tag == "auth":  # formatdomain "source > auth": rbd (ceph), iscsi, ...
            proto = el.get("protocol") if el.tag == "source" else _attr(el.find("source"), "protocol")
            refs += [_ref(s, p, ctx.auth_kind, _auth_usage_type(s, proto), ctx.target)
                     for s, p in _kids(child, cpath, "secret")]
        else:
            refs += _storage(child, cpath, ctx)
    return refs


def _auth_usage_type(secret: ET.Element, protocol: str | None) -> str:
    """The secret's own type when it names a usage, else what the protocol implies."""
    declared = secret.get("type")
    if declared in _USAGE_TYPES:
        return declared
    return "ceph" if protocol == "rbd" else "iscsi"


def _tpm(tpm: ET.Element, path: str) -> list[SecretRef]:
    """formatdomain "TPM device": <backend type='emulator'><encryption secret='UUID'/> (5.6.0),
    plus the libvir-list form <encryption format='vtpm'><secret type='passphrase' .../>."""
    target = tpm.get("model") or path.rsplit("/", 1)[1]  # e.g. "tpm-crb", else "tpm[1]"
    refs: list[SecretRef] = []
    for backend, bpath in _kids(tpm, path, "backend"):
        for enc, epath in _kids(backend, bpath, "encryption"):
            if enc.get("secret") is not None:
                apath = f"{epath}/@secret"
                refs.append(SecretRef(uuid=canonical_uuid(enc.get("secret", ""), f"UUID at {apath}:"),
                                      usage_type="vtpm", kind=SecretKind.VTPM,
                                      location=apath, target=target))
            refs += [_ref(s, p, SecretKind.VTPM, "vtpm", target) for s, p in _kids(enc, epath, "secret")]
    return refs


def _hostdev_target(hostdev: ET.Element) -> str | None:
    """Alias name if libvirt assigned one, else the guest drive address, else None."""
    alias = _attr(hostdev.find("alias"), "name")
    if alias:
        return alias
    addr = hostdev.find("address")
    if addr is None or addr.get("type") != "drive":
        return None
    return "drive:" + ":".join(addr.get(k, "0") for k in ("controller", "bus", "target", "unit"))


def _ref(secret: ET.Element, path: str, kind: SecretKind, usage_type: str,
         target: str | None) -> SecretRef:
    """A <secret uuid=... | usage=...> element as a SecretRef (uuid wins if both are given)."""
    raw_uuid, usage = secret.get("uuid"), secret.get("usage") or None
    if raw_uuid is None and usage is None:
        raise BadInput(f"secret reference at {path} has neither uuid nor usage",
                       hint="libvirt requires one of them; fix the domain definition")
    uuid = None if raw_uuid is None else canonical_uuid(raw_uuid, f"UUID at {path}:")
    return SecretRef(uuid=uuid, usage_type=usage_type, kind=kind, location=path,
                     usage_id=usage, target=target)


