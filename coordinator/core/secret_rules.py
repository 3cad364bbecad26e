"""Pure: what the destination needs for one secret, decided from plain facts (house rule 2).

``definition_verdict`` looks at the two definitions only; when it cannot decide, the value does
(``value_verdict``) — so a value is read only when the definitions leave the question open. Each
``Verdict`` names the action, the destination status shown to the operator, and the pre-flight
check id it fails (None: it passes), so no caller ever decides by reading a message string.

The provisioner (``steps.provision``) gathers what the hosts say into ``SecretFacts`` — first the
definitions, then, only for the question ``value_question`` leaves open, where the value comes from and
how it compares — and ``plan_secret`` turns those facts into the ``SecretPlan`` (verdict, statuses and
the operator's reason, from the tables here).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeGuard

from .migration_rules import secret_usage_ruling
from .model import SecretInfo, SecretPlan, SecretRef, Verdict


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


def wanted_flags(info: SecretInfo, policy: SecretPolicy) -> tuple[bool, bool]:
    """(private, ephemeral) for the destination copy: the policy's, else mirrored from the source."""
    return (info.private if policy.dest_private is None else policy.dest_private,
            info.ephemeral if policy.dest_ephemeral is None else policy.dest_ephemeral)


def definition_verdict(ref: SecretRef, src: SecretInfo | None, dst: SecretInfo | None,
                       policy: SecretPolicy, usage_holder: str | None = None) -> Verdict | None:
    """The verdict the two definitions alone force, or None when the value must decide.

    ``usage_holder``: when the destination has no secret of the source's UUID, the UUID of the destination's
    secret that already has the source secret's usage (type and id), if any (``usage_clash``)."""
    if src is None:
        return gone_from_source_verdict(ref, dst)
    if src.usage_type != ref.usage_type:
        return Verdict.SOURCE_USAGE_MISMATCH
    if dst is None:
        return Verdict.DEST_USAGE_TAKEN if usage_clash(src, usage_holder) else None
    # NOTE: libvirt looks a secret referenced by UUID up by UUID and checks only its usage *type*; one
    # referenced by usage is looked up by (type, id) (migration_rules.secret_usage_ruling).
    if secret_usage_ruling(by_uuid=ref.uuid is not None, want_type=src.usage_type, dst_type=dst.usage_type,
                           dst_id=dst.usage_id, want_id=src.usage_id).refused:
        return Verdict.DEST_USAGE_MISMATCH
    if policy.dest_private is not None and dst.private != policy.dest_private:
        return Verdict.PRIVATE_MISMATCH
    if policy.dest_ephemeral is not None and dst.ephemeral != policy.dest_ephemeral:
        return Verdict.EPHEMERAL_MISMATCH
    if dst.private and not policy.reset_values:
        return Verdict.UNVERIFIABLE_PRIVATE
    return None


def usage_clash(src: SecretInfo, holder: str | None) -> bool:
    """Would defining ``src`` (its UUID, usage and flags) fail on a destination where the secret ``holder``
    (a UUID, or None) has its usage? libvirt keeps one secret per usage (type + id): virSecretObjListAdd
    (libvirt 9.0 conf/virsecretobj.c) refuses a new UUID whose usage another secret holds ("a secret with
    UUID %s already defined for use with %s"). A secret without a usage id (usage type none) never clashes."""
    return holder is not None and bool(src.usage_id) and holder != src.uuid


def needs_usage_lookup(src: SecretInfo | None, dst: SecretInfo | None) -> TypeGuard[SecretInfo]:
    """Whether ``definition_verdict`` needs the destination's holder of the source secret's usage: only when
    the destination lacks the source's UUID (a secret is then to be defined there) and the usage has an id."""
    return src is not None and dst is None and bool(src.usage_id)


def value_verdict(dst: SecretInfo | None, have_value: bool, matches: bool | None) -> Verdict:
    """Once the definitions agree: ``have_value`` — a source of the authoritative value exists;
    ``matches`` — it equals the destination copy (None: not compared, e.g. private copy)."""
    if dst is None:
        return Verdict.PROVISION if have_value else Verdict.NO_VALUE_SOURCE
    if not have_value:
        return Verdict.UNVERIFIABLE_NO_VALUE
    if dst.private:
        return Verdict.RESET_VALUE
    return Verdict.MATCH if matches else Verdict.VALUE_MISMATCH


def gone_from_source_verdict(ref: SecretRef, dst: SecretInfo | None) -> Verdict | None:
    """The source no longer has the secret (a running guest keeps working without it). libvirt needs only
    the destination's copy: missing there too blocks; a wrong usage type blocks; a private copy cannot be
    compared; else (None) an operator-given value decides (``value_verdict`` with ``have_value`` False
    when there is none: used unverified)."""
    if dst is None:
        return Verdict.MISSING_ON_SOURCE
    if dst.usage_type != ref.usage_type:
        return Verdict.DEST_USAGE_MISMATCH
    if dst.private:
        return Verdict.UNVERIFIABLE_PRIVATE
    return None


# -- the facts one secret's plan is made of ----------------------------------------------------------

class Comparison(enum.Enum):
    """How the authoritative value compares with the destination copy's (compared by digest; the values
    themselves are never part of the facts)."""

    NOT_COMPARED = "not compared"  # no value to compare, a private copy, or no copy
    SAME = "same"
    DIFFERENT = "different"
    EMPTY = "empty"  # the copy is defined without any value

    @property
    def matches(self) -> bool | None:
        """``value_verdict``'s ``matches``: None when not compared."""
        return {Comparison.SAME: True, Comparison.DIFFERENT: False, Comparison.EMPTY: False}.get(self)


@dataclass(frozen=True)
class SecretFacts:
    """What was read about one secret reference: both definitions, the destination's holder of the source
    secret's usage, whether values may cross, and — only when the definitions leave it open — where the
    authoritative value comes from and how it compares with the destination copy."""

    ref: SecretRef
    src: SecretInfo | None  # the source's secret (None: gone from the source)
    dst: SecretInfo | None  # the destination's copy (``steps.provision``: looked up as libvirt will)
    src_uri: str
    dst_uri: str
    usage_holder: str | None = None  # see ``definition_verdict``; asked only when ``needs_usage_lookup``
    values_allowed: bool = True  # the transport rule lets values cross both connections
    value_source: str | None = None  # where the authoritative value comes from (None: nowhere, or not asked)
    comparison: Comparison = Comparison.NOT_COMPARED


@dataclass(frozen=True)
class GivenValue:
    """Gone from the source: only an operator-given value can vouch for the destination copy ``dst``."""

    dst: SecretInfo


@dataclass(frozen=True)
class ValueWhereFrom:
    """The destination lacks the secret: where its value would come from (read when applied)."""

    src: SecretInfo


@dataclass(frozen=True)
class CompareValues:
    """Both have the secret with agreeing definitions: the source's value against the destination copy's
    (not read when that copy is private)."""

    src: SecretInfo
    dst: SecretInfo


ValueQuestion = GivenValue | ValueWhereFrom | CompareValues


def value_question(f: SecretFacts, policy: SecretPolicy) -> ValueQuestion | None:
    """What still has to be learnt about the value once the definitions are known (None: nothing — the
    definitions decide, or no value may be read over this transport)."""
    if definition_verdict(f.ref, f.src, f.dst, policy, usage_holder=f.usage_holder) is not None \
            or not f.values_allowed:
        return None
    if f.src is None:
        return GivenValue(f.dst) if f.dst is not None else None  # NOTE: no copy either: MISSING_ON_SOURCE
    return ValueWhereFrom(f.src) if f.dst is None else CompareValues(f.src, f.dst)


def secret_verdict(f: SecretFacts, policy: SecretPolicy) -> Verdict:
    """The verdict for one secret from what was read (``SecretFacts``)."""
    verdict = definition_verdict(f.ref, f.src, f.dst, policy, usage_holder=f.usage_holder)
    if verdict is not None:
        return verdict
    if not f.values_allowed:
        return Verdict.VALUE_NOT_READ  # NOTE: neither the source API nor the keyring is asked
    if f.comparison is Comparison.EMPTY:
        # NOTE: defined with the right usage and flags but no value at all (a run that died between
        # define and set value): setting the value is what that run began.
        return Verdict.RESET_VALUE
    return value_verdict(f.dst, f.value_source is not None, f.comparison.matches)


def plan_secret(f: SecretFacts, policy: SecretPolicy) -> SecretPlan:
    """The plan for one secret: its verdict, the source status, the operator's reason, and which of the
    source's (or, gone from it, the destination's) UUID and usage it is about."""
    verdict = secret_verdict(f, policy)
    src, dst, ref = f.src, f.dst, f.ref
    src_st = "missing" if src is None else "private" if src.private else "readable"
    if verdict is Verdict.SOURCE_USAGE_MISMATCH and src is not None:
        src_st += f", usage {src.usage_type}"
    value_source = f.value_source if verdict in (Verdict.MATCH, Verdict.PROVISION, Verdict.RESET_VALUE) else None
    uuid = src.uuid if src is not None else ref.uuid or (dst.uuid if dst else None)
    usage_id = src.usage_id if src is not None else dst.usage_id if dst else ref.usage_id
    return SecretPlan(ref=ref, uuid=uuid, verdict=verdict, source_status=src_st, reason=secret_reason(verdict, f),
                      value_source=value_source, usage_id=usage_id)


# -- the operator's one-line reasons (name hosts, UUIDs and usages; never a value) -------------------

_NO_VALUE_HINT = "--secret-file/--secret-dir/--secret-command/--secret-stdin"


def secret_reason(v: Verdict, f: SecretFacts) -> str:
    """The operator's one-line explanation of verdict ``v`` for these facts."""
    src, dst, ref = f.src, f.dst, f.ref
    if src is None:
        return _reason_gone(v, f)
    uuid = src.uuid
    if v is Verdict.RESET_VALUE and f.comparison is Comparison.EMPTY:
        return (f"secret {uuid} is defined on {f.dst_uri} without a value "
                "(an interrupted run?); its value will be set")
    if v is Verdict.DEST_USAGE_TAKEN and f.usage_holder is not None:
        holder = f.usage_holder
        return (f"secret {uuid} is missing on {f.dst_uri}, but secret {holder} there already has "
                f"its usage {src.usage_type}:{src.usage_id!r}: libvirt would refuse to define it (a secret "
                f"with UUID {holder} already defined for use with that usage)")
    if v is Verdict.SOURCE_USAGE_MISMATCH:
        return (f"secret {uuid} has usage type {src.usage_type} on {f.src_uri} "
                f"but the domain needs {ref.usage_type}")
    if v is Verdict.NO_VALUE_SOURCE:
        return (f"secret {uuid} is private on {f.src_uri} and no value source "
                f"has it; give {_NO_VALUE_HINT}")
    if v is Verdict.VALUE_NOT_READ:
        return (f"secret {uuid}: its value is neither read nor sent: the connection to {f.src_uri} or "
                f"{f.dst_uri} is unprotected (see SECRET-PLAINTEXT-TRANSPORT)")
    if dst is None:
        return ""
    if v is Verdict.DEST_USAGE_MISMATCH:
        return (f"secret {uuid} has usage {dst.usage_type}:{dst.usage_id!r} on "
                f"{f.dst_uri} but {src.usage_type}:{src.usage_id!r} on {f.src_uri}")
    if v in (Verdict.PRIVATE_MISMATCH, Verdict.EPHEMERAL_MISMATCH):
        flag = "private" if v is Verdict.PRIVATE_MISMATCH else "ephemeral"
        have = dst.private if v is Verdict.PRIVATE_MISMATCH else dst.ephemeral
        return (f"secret {uuid} on {f.dst_uri} has {flag}={'yes' if have else 'no'}, the policy asks for "
                f"{'no' if have else 'yes'}")
    if v is Verdict.VALUE_MISMATCH:
        return (f"secret {uuid} has a different value on {f.dst_uri} than on "
                f"{f.src_uri}; the migration would fail late in swtpm")
    return _REASONS.get(v, "")


_REASONS = {
    Verdict.UNVERIFIABLE_PRIVATE: "destination copy is private and cannot be compared; "
                                  "pass --reset-secret-values to set the authoritative value",
    Verdict.UNVERIFIABLE_NO_VALUE: "no value available here to compare with the destination copy; give it "
                                   f"with {_NO_VALUE_HINT}",
    Verdict.RESET_VALUE: "destination copy is private; its value will be set (--reset-secret-values)",
}

_GONE_REASONS = {  # appended to "secret ... is not defined on the source ..." (the copy's UUID: {uuid})
    Verdict.UNVERIFIABLE_PRIVATE: "; the destination copy is used as it is: its value cannot be compared "
                                  "(private there)",
    Verdict.UNVERIFIABLE_NO_VALUE: "; the destination copy is used as it is: its value cannot be compared "
                                   "(give it with --secret-file ...)",
    Verdict.VALUE_NOT_READ: "; the destination copy's value is not read over an unprotected connection",
    Verdict.MATCH: "; the destination copy matches",
    Verdict.VALUE_MISMATCH: "; the destination copy {uuid} has a different value than the one given; "
                            "the migration would fail late in swtpm",
}


def _reason_gone(v: Verdict, f: SecretFacts) -> str:
    """Reasons when the source no longer has the secret (``gone_from_source_verdict``)."""
    ref, dst = f.ref, f.dst
    what = ref.uuid or f"with usage {ref.usage_type} {ref.usage_id!r}"
    gone = f"secret {what} is not defined on the source {f.src_uri}"
    if dst is None:
        return f"{gone} nor on the destination {f.dst_uri}"
    if v is Verdict.DEST_USAGE_MISMATCH:
        return f"{gone}; the destination copy has usage type {dst.usage_type}, the domain needs {ref.usage_type}"
    return gone + _GONE_REASONS.get(v, "").format(uuid=dst.uuid)
