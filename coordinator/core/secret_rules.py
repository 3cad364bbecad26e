"""Pure: what the destination needs for one secret, decided from plain facts (house rule 2).

``definition_verdict`` looks at the two definitions only; when it cannot decide, the value does
(``value_verdict``) — so a value is read only when the definitions leave the question open. Each
``Verdict`` names the action, the destination status shown to the operator, and the pre-flight
check id it fails (None: it passes), so no caller ever decides by reading a message string.
"""
from __future__ import annotations

from dataclasses import dataclass

from .migration_rules import secret_usage_ruling
from .model import SecretInfo, SecretRef, Verdict


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


def needs_usage_lookup(src: SecretInfo | None, dst: SecretInfo | None) -> bool:
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
