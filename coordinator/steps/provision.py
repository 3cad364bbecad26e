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
from dataclasses import replace

from coordinator.core.domain.secret_refs import secret_refs, unique_secret_refs
from coordinator.core.errors import Blocked, SecretMismatch, SecretUnavailable
from coordinator.core.model import SecretAction, SecretInfo, SecretPlan, SecretRef, SecretValue, Verdict
from coordinator.core.secret_rules import (Comparison, CompareValues, GivenValue, SecretFacts, SecretPolicy,
                                           ValueWhereFrom, needs_usage_lookup, plan_secret, value_question,
                                           wanted_flags)
from coordinator.core.secret_xml import with_flags
from coordinator.steps.transport import check_transport, values_may_cross
from coordinator.steps.journal import Journal
from coordinator.steps.keys import KeyRing
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")


def digest(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def fingerprint(run_key: bytes, data: bytes | bytearray | memoryview) -> str:
    """A value's fingerprint for comparing hosts within one run (``secrets audit``): HMAC-SHA256 under a
    random key of that run, 16 hex digits. Unlike a plain digest it cannot be checked against guessed
    passphrases after the run, nor matched with another run's output."""
    return hmac.new(run_key, data, hashlib.sha256).hexdigest()[:16]


def same_value(a: bytes | bytearray | memoryview, b: bytes | bytearray | memoryview) -> bool:
    return hmac.compare_digest(digest(a), digest(b))


def wipe(data: bytes | bytearray) -> None:
    """Zero a value read over a connection (``Host.secret_value``: a bytearray) once it has been used,
    in place. Anything else (a stand-in host's ``bytes``) is not ours to change and is left alone."""
    if isinstance(data, bytearray):
        with memoryview(data) as mv:
            mv[:] = bytes(len(data))


class SourceSecrets:
    """What the source host says about secrets — definitions and values — looked up at most once
    per run and shared by every destination's provisioner (an evacuation plans one source
    against several destinations). Thread-safe."""

    def __init__(self, src: Host, keyring: KeyRing | None = None) -> None:
        self.src = src
        self.keyring = keyring if keyring is not None else KeyRing()  # holds (and wipes) what we read
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
        """virSecretGetValue on the source, once per run (again if the run's values were wiped)."""
        with self._lock:
            if uuid not in self._values or self._values[uuid].wiped:
                data = self.src.secret_value(uuid)
                try:
                    self._values[uuid] = self.keyring.keep(SecretValue(data=data, source="source-api"))
                finally:
                    wipe(data)
            return self._values[uuid]


class SecretProvisioner:
    """One run's secret work between a source and a destination host.

    The one place that reads or writes secret values over a connection (source API, destination
    compare, provisioning), so the transport rule (``core.uris.check_transport``) is enforced
    here for every entry point — migrate, evacuate, its dry run, the checks, library callers:
    over an unprotected channel no value is read (``Verdict.VALUE_NOT_READ``) and ``apply``
    refuses before writing anything.

    ``plan`` only gathers facts (``SecretFacts``: what the hosts and the keyring say, never a value);
    ``core.secret_rules.plan_secret`` decides."""

    def __init__(self, src: Host, dst: Host, keyring: KeyRing | None = None, policy: SecretPolicy | None = None,
                 journal: Journal | None = None, created: list[str] | None = None,
                 source: SourceSecrets | None = None) -> None:
        self.src, self.dst = src, dst
        self.keyring = keyring if keyring is not None else KeyRing()
        self.policy = policy if policy is not None else SecretPolicy()
        self.journal = journal if journal is not None else Journal()
        self.created: list[str] = created if created is not None else []
        # What the source says: shared across destinations when the caller gives one, else this run's own.
        self.source = source if source is not None else SourceSecrets(self.src, self.keyring)
        self._usages: dict[tuple[str, str], str] | None = None
        self._usages_lock = threading.Lock()

    @property
    def values_allowed(self) -> bool:
        """Values may cross both connections (``core.uris``' rule and the policy's override)."""
        return values_may_cross(self.src.uri, self.dst.uri, allow_plaintext=self.policy.allow_plaintext)

    # -- reading ----------------------------------------------------------
    def value_source(self, uuid: str, src_info: SecretInfo) -> str | None:
        """Where the value would come from, reading the source API only when needed later:
        the source API for non-private secrets, then the operator's sources in order."""
        if self.policy.use_source_api and not src_info.private:
            return "source-api"
        v = self.keyring.value_for(uuid, src_info.usage_id)  # the keyring keeps what it read
        return v.source if v is not None else None

    def value(self, uuid: str, src_info: SecretInfo) -> SecretValue | None:
        """The authoritative value: the source API for non-private secrets, then the keyring."""
        if self.policy.use_source_api and not src_info.private:
            return self.source.api_value(uuid)
        return self.keyring.value_for(uuid, src_info.usage_id)

    def source_info(self, uuid: str | None) -> SecretInfo | None:
        """The source definition ``plan`` resolved for ``uuid`` (None before planning)."""
        return self.source.info(uuid)

    def resolve(self, ref: SecretRef) -> SecretInfo | None:
        """The source host's secret for a reference (usage references → UUID)."""
        return self.source.resolve(ref)

    def plan(self, refs: Iterable[SecretRef]) -> list[SecretPlan]:
        """Decide, per unique secret, what the destination needs. Reads only."""
        plans, seen = [], set()
        for ref in unique_secret_refs(list(refs)):
            p = plan_secret(self.facts(ref), self.policy)
            if p.uuid in seen and p.uuid is not None:
                continue
            seen.add(p.uuid)
            plans.append(p)
        return plans

    def facts(self, ref: SecretRef) -> SecretFacts:
        """What the hosts (and the keyring) say about one reference: the definitions, then only what
        ``value_question`` leaves open. Reads only; a value read to compare is wiped here."""
        info = self.resolve(ref)
        dst_info = self._destination_copy(ref, info)
        holder = self._usage_holder(info) if needs_usage_lookup(info, dst_info) else None
        f = SecretFacts(ref=ref, src=info, dst=dst_info, src_uri=self.src.uri, dst_uri=self.dst.uri,
                        usage_holder=holder, values_allowed=self.values_allowed)
        match value_question(f, self.policy):
            case GivenValue(dst=dst):
                value = self.keyring.value_for(dst.uuid, dst.usage_id)
                if value is None:
                    return f
                return replace(f, value_source=value.source,
                               comparison=self._compare(self.dst.secret_value(dst.uuid), value))
            case ValueWhereFrom(src=src):
                return replace(f, value_source=self.value_source(src.uuid, src))  # NOTE: read when applied
            case CompareValues(src=src, dst=dst):
                value = self.value(src.uuid, src)
                if value is None:
                    return f
                if dst.private:
                    return replace(f, value_source=value.source)
                there = self.dst.secret_value_if_set(src.uuid)
                return replace(f, value_source=value.source,
                               comparison=Comparison.EMPTY if there is None else self._compare(there, value))
        return f

    def _compare(self, there: bytes | bytearray, value: SecretValue) -> Comparison:
        return Comparison.SAME if self._matches(there, value) else Comparison.DIFFERENT

    @staticmethod
    def _matches(there: bytes | bytearray, value: SecretValue) -> bool:
        """Whether the destination's value (read to compare, wiped here) is ours."""
        try:
            return same_value(there, value.data)
        finally:
            wipe(there)

    def _usage_holder(self, info: SecretInfo) -> str | None:
        """The UUID of the destination's secret with the source secret's usage (``needs_usage_lookup``: it has
        an id), if any. The destination's usages are listed once per provisioner (one round trip, however
        many domains it plans)."""
        with self._usages_lock:
            if self._usages is None:
                self._usages = self.dst.secret_usages()
            return self._usages.get((info.usage_type, info.usage_id or ""))

    def _destination_copy(self, ref: SecretRef, info: SecretInfo | None) -> SecretInfo | None:
        """The destination's secret for this reference: by the source's UUID; when the source no longer
        has it, as libvirt will look it up there (by UUID, or by usage)."""
        if info is not None:
            return self.dst.secret_info(info.uuid) if info.usage_type == ref.usage_type else None
        if ref.uuid:
            return self.dst.secret_info(ref.uuid)
        return self.dst.secret_by_usage(ref.usage_type, ref.usage_id or "")

    # -- writing ----------------------------------------------------------
    def apply(self, plans: list[SecretPlan]) -> None:
        """Carry out PROVISION / RESET_VALUE plans. Raises before writing if any plan blocks."""
        check_transport(self.src.uri, self.dst.uri, allow_plaintext=self.policy.allow_plaintext)
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
                and not self._matches(self.dst.secret_value(p.uuid), value):
            raise SecretMismatch(f"secret {p.uuid} reads back differently on {self.dst.uri}")

    def rollback(self, dst_domains_xml: Iterable[str]) -> list[str]:
        """Undefine the secrets this run created that no destination domain references."""
        still_used = {r.uuid for xml in dst_domains_xml for r in secret_refs(xml) if r.uuid}
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
    still_used = {r.uuid for xml in src_domains_xml for r in secret_refs(xml) if r.uuid}
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
