"""Confirm or provision every secret a domain needs on the destination; undo what we created.

The decision per secret is made in ``SecretProvisioner.plan`` (reads only), carried out
in ``apply`` and undone in ``rollback``. Values stay in memory (``SecretValue``), travel
only through libvirt API calls, and are compared by SHA-256 digest. Nothing on the source
is ever changed here, except by the explicit, opt-in ``cleanup_source``.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET
import threading
from dataclasses import dataclass, field
from typing import Iterable

from . import domxml, migration_rules
from .errors import Blocked, SecretMismatch, SecretUnavailable
from .hypervisor import Host
from .journal import Journal
from .keys import KeyRing
from .model import SecretAction, SecretInfo, SecretPlan, SecretRef, SecretValue
from .uris import uri_facts

log = logging.getLogger("migcoord")


@dataclass(frozen=True)
class SecretPolicy:
    """How secrets are treated on the destination.

    ``dest_private`` / ``dest_ephemeral``: None mirrors the source secret's flag.
    ``reset_values``: when the destination copy is private (unverifiable), set our value.
    ``allow_plaintext``: permit sending values over a plaintext remote transport.
    ``use_source_api``: read non-private values from the source host.
    ``cleanup_source``: after a verified migration, undefine the source copies no other
    source domain uses (opt-in: deleting a secret can leave data unreadable).
    """

    dest_private: bool | None = None
    dest_ephemeral: bool | None = None
    reset_values: bool = False
    allow_plaintext: bool = False
    use_source_api: bool = True
    cleanup_source: bool = False


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def same_value(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(digest(a), digest(b))


def check_transport(*uris: str, allow_plaintext: bool) -> None:
    """Refuse (Blocked) before any value is read when a connection carrying it is plaintext."""
    for uri in uris:
        if uri_facts(uri).plaintext_remote and not allow_plaintext:
            raise Blocked(f"secret values would cross the network unencrypted over {uri}",
                          hint="use qemu+tls:// or qemu+ssh://, or pass --allow-plaintext-secrets",
                          check_id="SECRET-PLAINTEXT-TRANSPORT")


def wanted_flags(info: SecretInfo, policy: SecretPolicy) -> tuple[bool, bool]:
    """(private, ephemeral) for the destination copy: the policy's, else mirrored from the source."""
    return (info.private if policy.dest_private is None else policy.dest_private,
            info.ephemeral if policy.dest_ephemeral is None else policy.dest_ephemeral)


def wanted_xml(info: SecretInfo, policy: SecretPolicy) -> str:
    """The source secret's XML with the destination flags the policy asks for."""
    root = ET.fromstring(info.xml)
    private, ephemeral = wanted_flags(info, policy)
    root.set("private", "yes" if private else "no")
    root.set("ephemeral", "yes" if ephemeral else "no")
    return ET.tostring(root, encoding="unicode")


class SourceSecrets:
    """What the source host says about secrets — definitions and values — looked up at most once
    per run and shared by every destination's provisioner (an evacuation plans one source
    against several destinations). Thread-safe."""

    def __init__(self, src: Host) -> None:
        self.src = src
        self._lock = threading.Lock()
        self._info: dict[tuple[str, str], SecretInfo | None] = {}
        self._values: dict[str, SecretValue] = {}

    def resolve(self, ref: SecretRef) -> SecretInfo | None:
        """The source secret a reference means (usage references → UUID)."""
        key = ("uuid", ref.uuid) if ref.uuid else (ref.usage_type, ref.usage_id or "")
        with self._lock:
            if key not in self._info:
                info = (self.src.secret_info(ref.uuid) if ref.uuid
                        else self.src.secret_by_usage(ref.usage_type, ref.usage_id or ""))
                self._info[key] = info
                if info is not None:
                    self._info[("uuid", info.uuid)] = info
            return self._info[key]

    def info(self, uuid: str | None) -> SecretInfo | None:
        with self._lock:
            return self._info.get(("uuid", uuid or ""))

    def api_value(self, uuid: str) -> SecretValue:
        """virSecretGetValue on the source, once."""
        with self._lock:
            if uuid not in self._values:
                self._values[uuid] = SecretValue(data=self.src.secret_value(uuid), source="source-api")
            return self._values[uuid]


@dataclass
class SecretProvisioner:
    """One run's secret work between a source and a destination host."""

    src: Host
    dst: Host
    keyring: KeyRing = field(default_factory=KeyRing)
    policy: SecretPolicy = field(default_factory=SecretPolicy)
    journal: Journal = field(default_factory=Journal)
    created: list[str] = field(default_factory=list)
    source: SourceSecrets | None = None  # shared across destinations; made on demand

    def __post_init__(self) -> None:
        if self.source is None:
            self.source = SourceSecrets(self.src)

    # -- reading ----------------------------------------------------------
    def value_source(self, uuid: str, src_info: SecretInfo) -> str | None:
        """Where the value would come from, reading the source API only when needed later:
        the source API for non-private secrets, then the operator's sources in order."""
        if self.policy.use_source_api and not src_info.private:
            return "source-api"
        v = self.keyring.value_for(uuid)  # the keyring keeps what it read
        return v.source if v is not None else None

    def value(self, uuid: str, src_info: SecretInfo) -> SecretValue | None:
        """The authoritative value: the source API for non-private secrets, then the keyring."""
        assert self.source is not None
        if self.policy.use_source_api and not src_info.private:
            return self.source.api_value(uuid)
        return self.keyring.value_for(uuid)

    def source_info(self, uuid: str | None) -> SecretInfo | None:
        """The source definition ``plan`` resolved for ``uuid`` (None before planning)."""
        assert self.source is not None
        return self.source.info(uuid)

    def resolve(self, ref: SecretRef) -> SecretInfo | None:
        """The source host's secret for a reference (usage references → UUID)."""
        assert self.source is not None
        return self.source.resolve(ref)

    def plan(self, refs: Iterable[SecretRef]) -> list[SecretPlan]:
        """Decide, per unique secret, what the destination needs. Reads only."""
        plans, seen = [], set()
        for ref in domxml.unique_secret_refs(list(refs)):
            p = self._plan_one(ref)
            if p.uuid in seen and p.uuid is not None:
                continue
            seen.add(p.uuid)
            plans.append(p)
        return plans

    def _plan_one(self, ref: SecretRef) -> SecretPlan:
        def plan(action: SecretAction, src_st: str, dst_st: str, reason: str = "",
                 uuid: str | None = None, source: str | None = None) -> SecretPlan:
            usage_id = info.usage_id if info is not None else None
            return SecretPlan(ref=ref, uuid=uuid, action=action, source_status=src_st, dest_status=dst_st,
                              reason=reason, value_source=source, usage_id=usage_id)

        info = self.resolve(ref)
        if info is None:
            return self._plan_gone_from_source(ref)
        uuid = info.uuid
        src_st = "private" if info.private else "readable"
        if info.usage_type != ref.usage_type:
            return plan(SecretAction.BLOCK, f"{src_st}, usage {info.usage_type}", "unknown", uuid=uuid,
                        reason=f"secret {uuid} has usage type {info.usage_type} on {self.src.uri} "
                               f"but the domain needs {ref.usage_type}")
        dst_info = self.dst.secret_info(uuid)
        if dst_info is None:
            source = self.value_source(uuid, info)  # NOTE: the value itself is read when applied
            if source is None:
                return plan(SecretAction.BLOCK, src_st, "missing", uuid=uuid,
                            reason=f"secret {uuid} is private on {self.src.uri} and no value source "
                                   f"has it; give --secret-file/--secret-dir/--secret-command/--secret-stdin")
            return plan(SecretAction.PROVISION, src_st, "missing", uuid=uuid, source=source)
        # NOTE: libvirt looks a secret referenced by UUID up by UUID and checks only its usage *type*; one
        # referenced by usage is looked up by (type, id) (migration_rules.secret_usage_ruling).
        usage = migration_rules.secret_usage_ruling(by_uuid=ref.uuid is not None, want_type=info.usage_type,
                                                    dst_type=dst_info.usage_type, dst_id=dst_info.usage_id,
                                                    want_id=info.usage_id)
        if usage.refused:
            return plan(SecretAction.BLOCK, src_st, "usage-mismatch", uuid=uuid,
                        reason=f"secret {uuid} has usage {dst_info.usage_type}:{dst_info.usage_id!r} on "
                               f"{self.dst.uri} but {info.usage_type}:{info.usage_id!r} on {self.src.uri}")
        for flag, wanted in (("private", self.policy.dest_private), ("ephemeral", self.policy.dest_ephemeral)):
            if wanted is not None and getattr(dst_info, flag) != wanted:
                return plan(SecretAction.BLOCK, src_st, f"{flag}-mismatch", uuid=uuid,
                            reason=f"secret {uuid} on {self.dst.uri} has {flag}="
                                   f"{'yes' if getattr(dst_info, flag) else 'no'}, the policy asks for "
                                   f"{'yes' if wanted else 'no'}")
        if dst_info.private and not self.policy.reset_values:
            return plan(SecretAction.REUSE, src_st, "unverifiable", uuid=uuid,
                        reason="destination copy is private and cannot be compared; "
                               "pass --reset-secret-values to set the authoritative value")
        value = self.value(uuid, info)
        if value is None:
            return plan(SecretAction.REUSE, src_st, "unverifiable", uuid=uuid,
                        reason="no value available here to compare with; reusing the destination copy")
        if dst_info.private:
            return plan(SecretAction.RESET_VALUE, src_st, "unverifiable", uuid=uuid, source=value.source,
                        reason="destination copy is private; its value will be set (--reset-secret-values)")
        if same_value(self.dst.secret_value(uuid), value.data):
            return plan(SecretAction.REUSE, src_st, "match", uuid=uuid, source=value.source)
        return plan(SecretAction.BLOCK, src_st, "value-mismatch", uuid=uuid,
                    reason=f"secret {uuid} has a different value on {self.dst.uri} than on {self.src.uri}; "
                           f"the migration would fail late in swtpm")

    def _plan_gone_from_source(self, ref: SecretRef) -> SecretPlan:
        """The source no longer has the secret (a running guest keeps working without it). libvirt needs
        only the destination copy to migrate: use it when it is there with the right usage type, compared
        with an operator-given value when there is one."""
        what = ref.uuid or f"with usage {ref.usage_type} {ref.usage_id!r}"
        gone = f"secret {what} is not defined on the source {self.src.uri}"
        dst_info = (self.dst.secret_info(ref.uuid) if ref.uuid
                    else self.dst.secret_by_usage(ref.usage_type, ref.usage_id or ""))

        def plan(action: SecretAction, dst_st: str, reason: str, source: str | None = None) -> SecretPlan:
            return SecretPlan(ref=ref, uuid=ref.uuid or (dst_info.uuid if dst_info else None), action=action,
                              source_status="missing", dest_status=dst_st, reason=reason, value_source=source,
                              usage_id=dst_info.usage_id if dst_info else ref.usage_id)

        if dst_info is None:
            return plan(SecretAction.BLOCK, "missing", f"{gone} nor on the destination {self.dst.uri}")
        if dst_info.usage_type != ref.usage_type:
            return plan(SecretAction.BLOCK, "usage-mismatch",
                        f"{gone}; the destination copy has usage type {dst_info.usage_type}, the domain needs "
                        f"{ref.usage_type}")
        value = self.keyring.value_for(dst_info.uuid)
        if value is None or dst_info.private:
            return plan(SecretAction.REUSE, "unverifiable",
                        f"{gone}; the destination copy is used as it is: its value cannot be compared "
                        + ("(private there)" if dst_info.private else "(give it with --secret-file ...)"))
        if same_value(self.dst.secret_value(dst_info.uuid), value.data):
            return plan(SecretAction.REUSE, "match", f"{gone}; the destination copy matches", value.source)
        return plan(SecretAction.BLOCK, "value-mismatch",
                    f"{gone}; the destination copy {dst_info.uuid} has a different value than {value.source}; "
                    f"the migration would fail late in swtpm", value.source)

    # -- writing ----------------------------------------------------------
    def apply(self, plans: list[SecretPlan]) -> None:
        """Carry out PROVISION / RESET_VALUE plans. Raises before writing if any plan blocks."""
        blockers = [p for p in plans if p.action is SecretAction.BLOCK]
        if blockers:
            raise blocked_by(blockers)
        for p in plans:
            if p.action is SecretAction.PROVISION:
                self._provision(p)
            elif p.action is SecretAction.RESET_VALUE:
                value = self._value_for(p)
                self.dst.set_secret_value(value_uuid(p), value.data)
                self.journal.record("secret-value-reset", uuid=p.uuid, host=self.dst.uri,
                                    value_source=value.source)
            else:
                self.journal.record("secret-reused", uuid=p.uuid, host=self.dst.uri, status=p.dest_status)

    def _value_for(self, p: SecretPlan) -> SecretValue:
        info = self.source_info(p.uuid)
        value = self.value(value_uuid(p), info) if info is not None else None
        if value is None:  # the plan said a source has it; it no longer does
            raise SecretUnavailable(f"secret {p.uuid}: no value available any more from {p.value_source}")
        return value

    def _provision(self, p: SecretPlan) -> None:
        # NOTE: the value is read before anything is defined, so a failed read changes nothing.
        value = self._value_for(p)
        info = self.source_info(p.uuid)
        assert info is not None and p.uuid
        private, ephemeral = wanted_flags(info, self.policy)
        self.dst.define_secret(wanted_xml(info, self.policy))
        self.created.append(p.uuid)
        self.journal.record("secret-defined", uuid=p.uuid, host=self.dst.uri, usage_type=info.usage_type,
                            usage_id=info.usage_id, private=private, ephemeral=ephemeral)
        self.dst.set_secret_value(p.uuid, value.data)
        self.journal.record("secret-value-set", uuid=p.uuid, host=self.dst.uri, value_source=value.source)
        dst_info = self.dst.secret_info(p.uuid)
        if dst_info is not None and not dst_info.private:
            if not same_value(self.dst.secret_value(p.uuid), value.data):
                raise SecretMismatch(f"secret {p.uuid} reads back differently on {self.dst.uri}")

    def rollback(self, dst_domains_xml: Iterable[str]) -> list[str]:
        """Undefine the secrets this run created that no destination domain references."""
        still_used = {r.uuid for xml in dst_domains_xml for r in domxml.secret_refs(xml) if r.uuid}
        removed = []
        for uuid in reversed(self.created):
            if uuid in still_used:
                self.journal.record("secret-kept", uuid=uuid, host=self.dst.uri,
                                    reason="referenced by a destination domain")
                continue
            self.dst.undefine_secret(uuid)
            self.journal.record("secret-undefined", uuid=uuid, host=self.dst.uri, reason="rollback")
            removed.append(uuid)
        self.created = [u for u in self.created if u not in removed]
        return removed


def value_uuid(p: SecretPlan) -> str:
    assert p.uuid, "only plans for a resolved secret carry a value"
    return p.uuid


def cleanup_source(src: Host, uuids: Iterable[str], src_domains_xml: Iterable[str],
                   journal: Journal) -> list[str]:
    """Undefine source secrets that no remaining source domain references. Only ever called
    after a verified migration and only on the operator's explicit request."""
    still_used = {r.uuid for xml in src_domains_xml for r in domxml.secret_refs(xml) if r.uuid}
    removed = []
    for uuid in uuids:
        if uuid in still_used:
            journal.record("source-secret-kept", uuid=uuid, host=src.uri, reason="used by another domain")
            continue
        src.undefine_secret(uuid)
        journal.record("source-secret-undefined", uuid=uuid, host=src.uri, reason="--cleanup-source-secrets")
        removed.append(uuid)
    return removed


def blocked_by(blockers: list[SecretPlan]) -> Blocked:
    first = blockers[0]
    cls = SecretUnavailable if first.source_status == "private" and first.dest_status == "missing" \
        else SecretMismatch if "mismatch" in first.dest_status else Blocked
    more = f" (and {len(blockers) - 1} more)" if len(blockers) > 1 else ""
    return cls(first.reason + more, plans=blockers)
