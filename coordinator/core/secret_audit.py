"""Pure: the fleet's secret hygiene (``migcoord secrets audit HOST...``) — given what each host says about
its secrets and domains, the findings. No I/O, never a value: a secret's value arrives here only as a
fingerprint (``AuditedSecret.fingerprint``: a keyed digest made for this run, ``steps.provision``), or
not at all, with the reason (``unknown``).

AuditFinding kinds (``Kind``), each with how to fix it by hand and what would break if done wrongly:

- ``orphan``: a secret no domain defined on its host references (by UUID, or by usage for a ``usage=``
  reference), persistent or transient, running or not, in its live or its inactive definition (only
  domains are read: a storage pool's ``<auth>`` is not, so the fix says to confirm first);
- ``missing``: a domain references a secret its host does not hold: it will not start there;
- ``value-differs``: one UUID, different values on two hosts (compared by fingerprint; where a value
  could not be read — private, no value read over a plaintext transport — the comparison is an
  ``Unknown``, never a finding);
- ``ephemeral``: an ephemeral secret (memory only) backs a persistent domain: the next daemon restart
  loses the value and the domain will not start;
- ``usage-clash``: the same usage (type + id) held by different UUIDs on two hosts: a migration that
  provisions the source's UUID is refused on the destination, a ``usage=`` reference finds another secret.

The maintenance marker (``core.maintenance``: a secret with no value that migcoord uses as a flag) is
never an orphan. libvirt matches UUIDs case-insensitively; every UUID here is lower case.
"""
from __future__ import annotations

import enum
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .maintenance import USAGE_NAME as MAINTENANCE_USAGE
from .maintenance import USAGE_TYPE as MAINTENANCE_TYPE
from .model import SecretRef


class Kind(enum.StrEnum):
    ORPHAN = "orphan"
    MISSING = "missing"
    VALUE_DIFFERS = "value-differs"
    EPHEMERAL = "ephemeral"
    USAGE_CLASH = "usage-clash"


NO_VALUE = "no-value"
"""``AuditedSecret.fingerprint`` of a secret that is defined but holds no value (comparable: two hosts
without a value agree; one with and one without differ)."""


@dataclass(frozen=True)
class AuditedSecret:
    """One secret as its host reports it: the definition, and its value only as this run's fingerprint."""

    uuid: str
    usage_type: str
    usage_id: str | None
    ephemeral: bool
    private: bool
    fingerprint: str | None = None  # a keyed digest of the value (this run's key), NO_VALUE, or None
    unknown: str | None = None      # why ``fingerprint`` is None (private; plaintext transport; ...)

    @property
    def usage(self) -> str:
        return f"{self.usage_type}:{self.usage_id}" if self.usage_id else self.usage_type

    @property
    def is_marker(self) -> bool:
        return (self.usage_type, self.usage_id) == (MAINTENANCE_TYPE, MAINTENANCE_USAGE)


@dataclass(frozen=True)
class AuditedDomain:
    """One domain: its identity, state, and every secret reference of its live and inactive definitions
    (``core.domain.secret_refs.union_refs``)."""

    name: str
    persistent: bool
    active: bool
    refs: tuple[SecretRef, ...]


@dataclass(frozen=True)
class AuditedHost:
    uri: str
    secrets: tuple[AuditedSecret, ...]
    domains: tuple[AuditedDomain, ...]
    host_uuid: str = ""
    values_read: bool = True         # whether readable values were read (the transport rule)
    values_unread_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "host_uuid": self.host_uuid, "secrets": len(self.secrets),
                "domains": len(self.domains), "values_read": self.values_read,
                "values_unread_reason": self.values_unread_reason}


@dataclass(frozen=True)
class AuditFinding:
    kind: Kind
    hosts: tuple[str, ...]            # the URIs it concerns (one for a per-host finding)
    uuid: str | None                  # None: a ``usage=`` reference that resolves to nothing
    usage: str
    detail: str
    fix: tuple[str, ...]              # what to do by hand, virsh lines included
    risk: str                         # what breaks if it is done wrongly
    domains: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "hosts": list(self.hosts), "uuid": self.uuid, "usage": self.usage,
                "detail": self.detail, "fix": list(self.fix), "risk": self.risk, "domains": list(self.domains)}


@dataclass(frozen=True)
class Unknown:
    """A comparison that could not be made: one UUID on several hosts, a value unreadable on some."""

    uuid: str
    hosts: tuple[str, ...]
    reasons: Mapping[str, str]        # host URI → why its value is unknown

    @property
    def detail(self) -> str:
        why = "; ".join(f"{h}: {r}" for h, r in self.reasons.items())
        return f"whether the value is the same on {', '.join(self.hosts)} is unknown ({why})"

    def as_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "hosts": list(self.hosts), "reasons": dict(self.reasons),
                "detail": self.detail}


@dataclass(frozen=True)
class AuditReport:
    hosts: tuple[AuditedHost, ...]
    findings: tuple[AuditFinding, ...]
    unknowns: tuple[Unknown, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        """Findings per kind, every kind listed (0 when none)."""
        return {str(k): sum(f.kind is k for f in self.findings) for k in Kind}

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": [h.as_dict() for h in self.hosts], "findings": [f.as_dict() for f in self.findings],
                "unknown": [u.as_dict() for u in self.unknowns], "counts": self.counts(), "clean": self.clean}


def _virsh(uri: str, *args: str) -> str:
    return " ".join(["virsh", "-c", shlex.quote(uri), *(shlex.quote(a) for a in args)])


def resolves(ref: SecretRef, secret: AuditedSecret) -> bool:
    """Whether ``ref`` names ``secret`` as libvirt resolves it: by UUID, else by usage type + id."""
    if ref.uuid is not None:
        return ref.uuid == secret.uuid
    return (ref.usage_type, ref.usage_id) == (secret.usage_type, secret.usage_id)


def _ref_usage(ref: SecretRef) -> str:
    return f"{ref.usage_type}:{ref.usage_id}" if ref.usage_id else ref.usage_type


def _users(host: AuditedHost, secret: AuditedSecret) -> list[AuditedDomain]:
    return [d for d in host.domains if any(resolves(r, secret) for r in d.refs)]


def audit(hosts: Sequence[AuditedHost]) -> AuditReport:
    """The findings (sorted: per host in the order given, then across hosts) and the unknowns."""
    findings: list[AuditFinding] = []
    for h in hosts:
        findings += _orphans(h, hosts) + _missing(h, hosts) + _ephemeral(h)
    found, unknowns = _values(hosts)
    findings += found + _usage_clashes(hosts)
    return AuditReport(tuple(hosts), tuple(findings), tuple(unknowns))


def _orphans(h: AuditedHost, hosts: Sequence[AuditedHost]) -> list[AuditFinding]:
    out = []
    for s in h.secrets:
        if s.is_marker or _users(h, s):
            continue
        elsewhere = sorted(f"{d.name} on {o.uri}" for o in hosts if o is not h for d in o.domains
                           if any(r.uuid == s.uuid for r in d.refs))
        hint = {"vtpm": "a vTPM's state key; the usage names its VM", "volume": "the passphrase of an encrypted "
                "volume at that path", "ceph": "a Ceph client key", "iscsi": "an iSCSI CHAP secret",
                "tls": "a TLS key passphrase"}.get(s.usage_type, "no usage: nothing says what it was for")
        detail = (f"no domain on this host references it; usage {s.usage}: {hint}"
                  + (f"; still used by {', '.join(elsewhere)}" if elsewhere else "")
                  + ("; ephemeral" if s.ephemeral else "") + ("; private" if s.private else ""))
        out.append(AuditFinding(
            Kind.ORPHAN, (h.uri,), s.uuid, s.usage, detail,
            fix=("confirm nothing else needs it (a storage pool's auth, a VM defined elsewhere or to be "
                 "restored, a backup of its vTPM state or disk, an image at the usage path); keep a copy of "
                 "the value in your vault, then:", _virsh(h.uri, "secret-undefine", s.uuid)),
            risk="undefining a secret that something still needs leaves what it encrypts (vTPM state, a LUKS "
                 "disk) unreadable for good; libvirt cannot tell, and migcoord never deletes it for you",
            domains=tuple(elsewhere)))
    return out


def _missing(h: AuditedHost, hosts: Sequence[AuditedHost]) -> list[AuditFinding]:
    out = []
    for d in h.domains:
        seen: set[tuple[str, str]] = set()
        for r in d.refs:
            if r.key in seen or any(resolves(r, s) for s in h.secrets):
                continue
            seen.add(r.key)
            holders = [o.uri for o in hosts if o is not h and any(resolves(r, s) for s in o.secrets)]
            uuid = r.uuid or "UUID"
            fix = ["define it with the same UUID, usage and value as the domain's data was encrypted with"
                   + (f" (held on {', '.join(holders)})" if holders else "") + ":",
                   _virsh(h.uri, "secret-define", "SECRET.xml"),
                   _virsh(h.uri, "secret-set-value", uuid, "--file", "KEYFILE", "--plain")]
            out.append(AuditFinding(
                Kind.MISSING, (h.uri,), r.uuid, _ref_usage(r),
                f"domain {d.name} ({'running' if d.active else 'shut off'}, "
                f"{'persistent' if d.persistent else 'transient'}) references it at {r.location} ({r.kind}); "
                f"the host lacks it, so the domain will not start here",
                fix=tuple(fix),
                risk="a new value (instead of the original) cannot decrypt the existing vTPM state or disk; "
                     "undefining the domain instead loses its definition (and with --tpm its vTPM state)",
                domains=(d.name,)))
    return out


def _ephemeral(h: AuditedHost) -> list[AuditFinding]:
    out = []
    for s in h.secrets:
        users = [d.name for d in _users(h, s) if d.persistent]
        if not s.ephemeral or not users:
            continue
        out.append(AuditFinding(
            Kind.EPHEMERAL, (h.uri,), s.uuid, s.usage,
            f"ephemeral (held in memory only) but backs persistent domain(s) {', '.join(users)}: the next "
            "restart of libvirtd loses the value and they will not start",
            # NOTE: libvirt 9.0 (secretDefineXML of a defined ephemeral secret as ephemeral='no': the value is
            # kept and saved), checked on the lab with virsh; an undefine would drop the value at once.
            fix=("redefine it as non-ephemeral with the same UUID and usage (libvirt keeps the value and from "
                 "then on stores it on the host's disk):",
                 f"{_virsh(h.uri, 'secret-dumpxml', s.uuid)} | sed \"s/ephemeral='yes'/ephemeral='no'/\" "
                 "> SECRET.xml", _virsh(h.uri, "secret-define", "SECRET.xml")),
            risk="undefining it (to define it again) or restarting libvirtd first loses the value now; "
                 "keep a copy in your vault before touching it",
            domains=tuple(users)))
    return out


def _values(hosts: Sequence[AuditedHost]) -> tuple[list[AuditFinding], list[Unknown]]:
    by_uuid: dict[str, list[tuple[AuditedHost, AuditedSecret]]] = {}
    for h in hosts:
        for s in h.secrets:
            by_uuid.setdefault(s.uuid, []).append((h, s))
    findings, unknowns = [], []
    for uuid, held in by_uuid.items():
        if len(held) < 2:
            continue
        known = [(h, s) for h, s in held if s.fingerprint is not None]
        groups: dict[str, list[str]] = {}
        for h, s in known:
            groups.setdefault(str(s.fingerprint), []).append(h.uri)
        if len(groups) > 1:
            shown = "; ".join(f"value {i}: {', '.join(uris)}" + (" (no value set)" if fp == NO_VALUE else "")
                              for i, (fp, uris) in enumerate(groups.items(), 1))
            s0 = held[0][1]
            findings.append(AuditFinding(
                Kind.VALUE_DIFFERS, tuple(h.uri for h, _ in known), uuid, s0.usage,
                f"the same UUID holds different values ({shown}): a migration between them fails late "
                "(the destination's swtpm cannot decrypt the state)",
                fix=("find the right value: the one the domain's vTPM state or disk was encrypted with "
                     "(the host where it last ran); then on each other host:",
                     *(_virsh(h.uri, "secret-set-value", uuid, "--file", "KEYFILE", "--plain")
                       for h, _ in known)),
                risk="setting the wrong value everywhere leaves the state unreadable on every host; a "
                     "domain on a host whose value you replace cannot start until it gets its own back"))
        missing = {h.uri: str(s.unknown or "unreadable") for h, s in held if s.fingerprint is None}
        if missing and len(groups) <= 1:
            unknowns.append(Unknown(uuid, tuple(h.uri for h, _ in held), missing))
    return findings, unknowns


def _usage_clashes(hosts: Sequence[AuditedHost]) -> list[AuditFinding]:
    by_usage: dict[tuple[str, str], dict[str, list[str]]] = {}
    for h in hosts:
        for s in h.secrets:
            if s.usage_id and not s.is_marker:
                by_usage.setdefault((s.usage_type, s.usage_id), {}).setdefault(s.uuid, []).append(h.uri)
    out = []
    for (utype, uid), uuids in by_usage.items():
        if len(uuids) < 2:
            continue
        shown = "; ".join(f"{u} on {', '.join(where)}" for u, where in uuids.items())
        out.append(AuditFinding(
            Kind.USAGE_CLASH, tuple(dict.fromkeys(uri for where in uuids.values() for uri in where)), None,
            f"{utype}:{uid}", f"one usage, different UUIDs ({shown}): libvirt refuses to define a second secret "
            "with this usage, so migrating a domain that needs the other UUID is refused there; a usage= "
            "reference finds a different secret on each host",
            fix=("decide which UUID the domains need (the orphan and missing findings above say which are "
                 "used); on a host where the other UUID is unused, keep a copy of its value, then ONE of:",
                 *(_virsh(uri, "secret-undefine", u) for u, where in uuids.items() for uri in where)),
            risk="undefining the UUID a domain on that host does use leaves its vTPM state or disk unreadable"))
    return out


def exit_kind(report: AuditReport) -> str:
    """``clean`` | ``findings`` | ``unknown`` (no finding, but some comparison could not be made)."""
    if report.findings:
        return "findings"
    return "unknown" if report.unknowns else "clean"
