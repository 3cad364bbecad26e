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
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from coordinator.core import domxml
from coordinator.core.errors import Blocked, SecretMismatch, SecretUnavailable
from coordinator.core.model import SecretAction, SecretInfo, SecretPlan, SecretRef, SecretValue, Verdict
from coordinator.core.secret_rules import SecretPolicy, definition_verdict, value_verdict, wanted_flags
from coordinator.core.secret_xml import with_flags
from coordinator.steps.journal import Journal
from coordinator.steps.keys import KeyRing
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def same_value(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(digest(a), digest(b))


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
        empty_reason = ""
        info = self.resolve(ref)
        dst_info = self.dst.secret_info(info.uuid) if info is not None and info.usage_type == ref.usage_type \
            else None
        verdict = definition_verdict(ref, info, dst_info, self.policy)
        source: str | None = None
        if verdict is None:
            assert info is not None
            if dst_info is None:
                source = self.value_source(info.uuid, info)  # NOTE: the value itself is read when applied
                verdict = value_verdict(None, source is not None, None)
            else:
                value = self.value(info.uuid, info)
                source = value.source if value is not None else None
                there = None if value is None or dst_info.private else self.dst.secret_value_if_set(info.uuid)
                matches = None if value is None or dst_info.private else \
                    there is not None and same_value(there, value.data)
                verdict = value_verdict(dst_info, value is not None, matches)
                if value is not None and not dst_info.private and there is None:
                    # NOTE: defined with the right usage and flags but no value at all (a run that
                    # died between define and set value): setting the value is what that run began.
                    verdict = Verdict.RESET_VALUE
                    empty_reason = (f"secret {info.uuid} is defined on {self.dst.uri} without a value "
                                    "(an interrupted run?); its value will be set")
        src_st = "missing" if info is None else "private" if info.private else "readable"
        if verdict is Verdict.SOURCE_USAGE_MISMATCH:
            assert info is not None
            src_st += f", usage {info.usage_type}"
        if verdict not in (Verdict.MATCH, Verdict.PROVISION, Verdict.RESET_VALUE):
            source = None
        reason = empty_reason or self._reason(verdict, ref, info, dst_info)
        return SecretPlan(ref=ref, uuid=info.uuid if info is not None else ref.uuid, verdict=verdict,
                          source_status=src_st, reason=reason,
                          value_source=source, usage_id=info.usage_id if info is not None else None)

    def _reason(self, v: Verdict, ref: SecretRef, info: SecretInfo | None, dst: SecretInfo | None) -> str:
        """The operator's one-line explanation of a verdict (names hosts, UUIDs and usages; never a value)."""
        if info is None:
            what = ref.uuid or f"with usage {ref.usage_type} {ref.usage_id!r}"
            return f"secret {what} is not defined on the source {self.src.uri}"
        uuid = info.uuid
        if v is Verdict.SOURCE_USAGE_MISMATCH:
            return (f"secret {uuid} has usage type {info.usage_type} on {self.src.uri} "
                    f"but the domain needs {ref.usage_type}")
        if v is Verdict.NO_VALUE_SOURCE:
            return (f"secret {uuid} is private on {self.src.uri} and no value source "
                    f"has it; give --secret-file/--secret-dir/--secret-command/--secret-stdin")
        if dst is None:
            return ""
        if v is Verdict.DEST_USAGE_MISMATCH:
            return (f"secret {uuid} has usage {dst.usage_type}:{dst.usage_id!r} on "
                    f"{self.dst.uri} but {info.usage_type}:{info.usage_id!r} on {self.src.uri}")
        if v in (Verdict.PRIVATE_MISMATCH, Verdict.EPHEMERAL_MISMATCH):
            flag = "private" if v is Verdict.PRIVATE_MISMATCH else "ephemeral"
            have = getattr(dst, flag)
            return (f"secret {uuid} on {self.dst.uri} has {flag}={'yes' if have else 'no'}, the policy asks for "
                    f"{'no' if have else 'yes'}")
        return {
            Verdict.UNVERIFIABLE_PRIVATE: "destination copy is private and cannot be compared; "
                                          "pass --reset-secret-values to set the authoritative value",
            Verdict.UNVERIFIABLE_NO_VALUE: "no value available here to compare with; reusing the destination copy",
            Verdict.RESET_VALUE: "destination copy is private; its value will be set (--reset-secret-values)",
            Verdict.VALUE_MISMATCH: f"secret {uuid} has a different value on {self.dst.uri} than on "
                                    f"{self.src.uri}; the migration would fail late in swtpm",
        }.get(v, "")

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
        self.dst.define_secret(with_flags(info, private, ephemeral))
        self.created.append(p.uuid)
        self.journal.record("secret-defined", uuid=p.uuid, host=self.dst.uri, usage_type=info.usage_type,
                            usage_id=info.usage_id, private=private, ephemeral=ephemeral)
        self.dst.set_secret_value(p.uuid, value.data)
        self.journal.record("secret-value-set", uuid=p.uuid, host=self.dst.uri, value_source=value.source)
        dst_info = self.dst.secret_info(p.uuid)
        if dst_info is not None and not dst_info.private \
                and not same_value(self.dst.secret_value(p.uuid), value.data):
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
    cls = SecretUnavailable if first.verdict is Verdict.NO_VALUE_SOURCE \
        else SecretMismatch if first.verdict.is_mismatch else Blocked
    more = f" (and {len(blockers) - 1} more)" if len(blockers) > 1 else ""
    return cls(first.reason + more, plans=blockers)
