"""coordinator.core.secret_rules: the pure per-secret decision (definitions, then value), the flags
the destination copy gets, and what each Verdict means (action, destination status, check id)."""
from __future__ import annotations

import pytest

from coordinator.core.model import SecretAction, SecretInfo, SecretKind, SecretPlan, SecretRef, Verdict
from coordinator.core.secret_rules import (SecretPolicy, definition_verdict, needs_usage_lookup, usage_clash,
                                           value_verdict, wanted_flags)

U = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
REF = SecretRef(uuid=U, usage_type="vtpm", kind=SecretKind.VTPM, location="/domain/devices/tpm[1]")
V = Verdict
BLOCK, REUSE, PROVISION, RESET = SecretAction.BLOCK, SecretAction.REUSE, SecretAction.PROVISION, \
    SecretAction.RESET_VALUE


def info(usage_type: str = "vtpm", usage_id: str | None = "VTPM_vm1", private: bool = False,
         ephemeral: bool = False) -> SecretInfo:
    return SecretInfo(uuid=U, usage_type=usage_type, usage_id=usage_id, ephemeral=ephemeral, private=private,
                      xml="<secret/>")


SRC = info()
PRIV_SRC = info(private=True)
POLICY = SecretPolicy()


# -- definition_verdict ----------------------------------------------------------------------

@pytest.mark.parametrize("src, dst, policy, expected", [
    pytest.param(None, None, POLICY, V.MISSING_ON_SOURCE, id="source-missing"),
    # Gone from the source: libvirt needs only the destination copy (gone_from_source_verdict).
    pytest.param(None, info(usage_type="volume"), POLICY, V.DEST_USAGE_MISMATCH, id="gone-destination-wrong-type"),
    pytest.param(None, info(private=True), POLICY, V.UNVERIFIABLE_PRIVATE, id="gone-destination-private"),
    pytest.param(None, info(), POLICY, None, id="gone-destination-copy-the-value-decides"),
    pytest.param(info(usage_type="volume", usage_id="/i.qcow2"), None, POLICY, V.SOURCE_USAGE_MISMATCH,
                 id="source-usage-type-differs-from-reference"),
    pytest.param(info(usage_type="volume"), info(usage_type="volume"), POLICY, V.SOURCE_USAGE_MISMATCH,
                 id="source-usage-checked-before-destination"),
    pytest.param(SRC, None, POLICY, None, id="destination-missing-value-decides"),
    pytest.param(PRIV_SRC, None, SecretPolicy(dest_private=False), None, id="destination-missing-flags-irrelevant"),
    pytest.param(SRC, info(usage_type="volume"), POLICY, V.DEST_USAGE_MISMATCH, id="destination-usage-type"),
    # Referenced by UUID, libvirt checks only the usage type (migration_rules.secret_usage_ruling).
    pytest.param(SRC, info(usage_id="VTPM_other"), POLICY, None, id="destination-usage-id-by-uuid-ok"),
    pytest.param(SRC, info(usage_id=None), POLICY, None, id="destination-usage-id-absent-by-uuid-ok"),
    pytest.param(SRC, info(usage_type="volume", private=True), SecretPolicy(dest_private=False),
                 V.DEST_USAGE_MISMATCH, id="usage-before-flags"),
    pytest.param(SRC, info(private=False), SecretPolicy(dest_private=True), V.PRIVATE_MISMATCH,
                 id="policy-private-destination-readable"),
    pytest.param(SRC, info(private=True), SecretPolicy(dest_private=False, reset_values=True), V.PRIVATE_MISMATCH,
                 id="policy-readable-destination-private"),
    pytest.param(SRC, info(ephemeral=False), SecretPolicy(dest_ephemeral=True), V.EPHEMERAL_MISMATCH,
                 id="policy-ephemeral-destination-persistent"),
    pytest.param(SRC, info(ephemeral=True), SecretPolicy(dest_ephemeral=False), V.EPHEMERAL_MISMATCH,
                 id="policy-persistent-destination-ephemeral"),
    pytest.param(SRC, info(private=True, ephemeral=True), SecretPolicy(dest_private=False, dest_ephemeral=False),
                 V.PRIVATE_MISMATCH, id="private-reported-before-ephemeral"),
    pytest.param(SRC, info(ephemeral=True), POLICY, None, id="mirrored-ephemeral-no-mismatch"),
    pytest.param(PRIV_SRC, info(private=False), POLICY, None, id="mirrored-private-no-mismatch"),
    pytest.param(SRC, info(private=True), POLICY, V.UNVERIFIABLE_PRIVATE, id="mirrored-private-destination"),
    pytest.param(SRC, info(private=True), SecretPolicy(dest_private=True), V.UNVERIFIABLE_PRIVATE,
                 id="private-destination-as-asked"),
    pytest.param(SRC, info(private=True), SecretPolicy(reset_values=True), None,
                 id="private-destination-reset-value-decides"),
    pytest.param(SRC, info(ephemeral=True), SecretPolicy(dest_ephemeral=True), None, id="flags-as-asked"),
    pytest.param(SRC, info(), POLICY, None, id="definitions-agree-value-decides"),
])
def test_definition_verdict(src, dst, policy, expected):
    assert definition_verdict(REF, src, dst, policy) is expected


OTHER = "0b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"


# A secret the destination lacks (by UUID) is defined there; libvirt keeps one secret per usage, so another
# UUID holding that usage makes virSecretDefineXML fail — found while planning, before anything changes.
@pytest.mark.parametrize("src, dst, holder, policy, expected", [
    pytest.param(SRC, None, None, POLICY, None, id="usage-free-provision"),
    pytest.param(SRC, None, OTHER, POLICY, V.DEST_USAGE_TAKEN, id="usage-held-by-another-uuid"),
    pytest.param(SRC, None, U, POLICY, None, id="usage-held-by-the-same-uuid"),
    pytest.param(PRIV_SRC, None, OTHER, SecretPolicy(dest_private=False), V.DEST_USAGE_TAKEN,
                 id="usage-taken-whatever-the-flags"),
    pytest.param(info(usage_id=None), None, OTHER, POLICY, None, id="no-usage-id-never-clashes"),
    pytest.param(SRC, info(), OTHER, POLICY, None, id="same-uuid-there-nothing-is-defined"),
    pytest.param(info(usage_type="volume", usage_id="/i.qcow2"), None, OTHER, POLICY, V.SOURCE_USAGE_MISMATCH,
                 id="source-usage-first"),
    pytest.param(None, None, OTHER, POLICY, V.MISSING_ON_SOURCE, id="gone-from-source-nothing-is-defined"),
])
def test_definition_verdict_usage_taken_on_destination(src, dst, holder, policy, expected):
    assert definition_verdict(REF, src, dst, policy, usage_holder=holder) is expected


@pytest.mark.parametrize("src, holder, clash", [
    (SRC, None, False), (SRC, OTHER, True), (SRC, U, False), (info(usage_id=None), OTHER, False),
    (info(usage_id=""), OTHER, False),
])
def test_usage_clash(src, holder, clash):
    assert usage_clash(src, holder) is clash


@pytest.mark.parametrize("src, dst, needed", [
    (SRC, None, True), (SRC, info(), False), (None, None, False), (info(usage_id=None), None, False),
])
def test_usage_lookup_only_when_a_secret_would_be_defined(src, dst, needed):
    assert needs_usage_lookup(src, dst) is needed


def test_definition_verdict_of_a_usage_reference():
    ref = SecretRef(uuid=None, usage_type="volume", usage_id="/i.qcow2", kind=SecretKind.DISK_ENCRYPTION,
                    location="/domain/devices/disk[1]/source/encryption/secret")
    vol = info(usage_type="volume", usage_id="/i.qcow2")
    assert definition_verdict(ref, vol, vol, POLICY) is None
    assert definition_verdict(ref, SRC, None, POLICY) is V.SOURCE_USAGE_MISMATCH


# -- value_verdict ---------------------------------------------------------------------------

@pytest.mark.parametrize("dst, have_value, matches, expected", [
    pytest.param(None, True, None, V.PROVISION, id="missing-with-value-source"),
    pytest.param(None, False, None, V.NO_VALUE_SOURCE, id="missing-without-value-source"),
    pytest.param(info(), False, None, V.UNVERIFIABLE_NO_VALUE, id="present-no-value-to-compare"),
    pytest.param(info(private=True), False, None, V.UNVERIFIABLE_NO_VALUE, id="private-no-value"),
    pytest.param(info(private=True), True, None, V.RESET_VALUE, id="private-reset"),
    pytest.param(info(private=True), True, False, V.RESET_VALUE, id="private-reset-whatever-compared"),
    pytest.param(info(), True, True, V.MATCH, id="match"),
    pytest.param(info(), True, False, V.VALUE_MISMATCH, id="mismatch"),
    pytest.param(info(), True, None, V.VALUE_MISMATCH, id="not-compared-is-never-a-match"),
])
def test_value_verdict(dst, have_value, matches, expected):
    assert value_verdict(dst, have_value, matches) is expected


# -- the whole decision, as the provisioner makes it -----------------------------------------

def decide(src: SecretInfo | None, dst: SecretInfo | None, policy: SecretPolicy, have_value: bool,
           matches: bool | None) -> Verdict:
    return definition_verdict(REF, src, dst, policy) or value_verdict(dst, have_value, matches)


@pytest.mark.parametrize("src, dst, policy, have_value, matches, check_id", [
    pytest.param(None, None, POLICY, False, None, "SECRET-MISSING-ON-SOURCE", id="missing-on-source"),
    pytest.param(info(usage_type="volume"), None, POLICY, True, None, "SECRET-USAGE-MISMATCH", id="source-usage"),
    pytest.param(SRC, info(usage_type="volume"), POLICY, True, None, "SECRET-USAGE-MISMATCH",
                 id="destination-usage"),
    pytest.param(SRC, info(), POLICY, True, False, "SECRET-VALUE-MISMATCH", id="value-mismatch"),
    pytest.param(PRIV_SRC, info(private=False), SecretPolicy(dest_private=True), True, None,
                 "SECRET-FLAGS-MISMATCH", id="private-mismatch"),
    pytest.param(SRC, info(ephemeral=False), SecretPolicy(dest_ephemeral=True), True, None,
                 "SECRET-FLAGS-MISMATCH", id="ephemeral-mismatch"),
    pytest.param(PRIV_SRC, None, POLICY, False, None, "SECRET-NO-VALUE-SOURCE", id="private-source-no-value"),
    pytest.param(PRIV_SRC, info(private=True), POLICY, True, None, "SECRET-UNVERIFIABLE",
                 id="private-destination-not-reset"),
    pytest.param(PRIV_SRC, info(), POLICY, False, None, "SECRET-UNVERIFIABLE", id="no-value-to-compare"),
    pytest.param(PRIV_SRC, info(private=True), SecretPolicy(reset_values=True), True, None, None, id="reset"),
    pytest.param(SRC, info(), POLICY, True, True, None, id="match"),
    pytest.param(SRC, None, POLICY, True, None, None, id="provision"),
])
def test_decision_to_check_id(src, dst, policy, have_value, matches, check_id):
    assert decide(src, dst, policy, have_value, matches).check_id == check_id


# -- what each verdict means -----------------------------------------------------------------

MEANING = {
    V.MISSING_ON_SOURCE: (BLOCK, "missing", "SECRET-MISSING-ON-SOURCE", False),
    V.SOURCE_USAGE_MISMATCH: (BLOCK, "unknown", "SECRET-USAGE-MISMATCH", False),
    V.NO_VALUE_SOURCE: (BLOCK, "missing", "SECRET-NO-VALUE-SOURCE", False),
    V.PROVISION: (PROVISION, "missing", None, False),
    V.DEST_USAGE_TAKEN: (BLOCK, "usage-taken", "SECRET-USAGE-TAKEN", False),
    V.DEST_USAGE_MISMATCH: (BLOCK, "usage-mismatch", "SECRET-USAGE-MISMATCH", True),
    V.PRIVATE_MISMATCH: (BLOCK, "private-mismatch", "SECRET-FLAGS-MISMATCH", True),
    V.EPHEMERAL_MISMATCH: (BLOCK, "ephemeral-mismatch", "SECRET-FLAGS-MISMATCH", True),
    V.UNVERIFIABLE_PRIVATE: (REUSE, "unverifiable", "SECRET-UNVERIFIABLE", False),
    V.UNVERIFIABLE_NO_VALUE: (REUSE, "unverifiable", "SECRET-UNVERIFIABLE", False),
    V.RESET_VALUE: (RESET, "unverifiable", None, False),
    V.MATCH: (REUSE, "match", None, False),
    V.VALUE_MISMATCH: (BLOCK, "value-mismatch", "SECRET-VALUE-MISMATCH", True),
    V.VALUE_NOT_READ: (BLOCK, "not-compared", "SECRET-PLAINTEXT-TRANSPORT", False),
}


def test_verdicts_are_distinct_members():
    # Equal enum values would make one verdict an alias of another (and its reason the other's).
    assert len({v.name for v in Verdict}) == len(Verdict.__members__)


@pytest.mark.parametrize("verdict", list(Verdict), ids=lambda v: v.name)
def test_verdict_meaning(verdict):
    action, dest_status, check_id, is_mismatch = MEANING[verdict]
    assert (verdict.action, verdict.dest_status, verdict.check_id, verdict.is_mismatch) == \
        (action, dest_status, check_id, is_mismatch)


@pytest.mark.parametrize("verdict", list(Verdict), ids=lambda v: v.name)
def test_plan_reads_action_status_and_check_id_from_its_verdict(verdict):
    plan = SecretPlan(REF, U, verdict, "readable", reason="why")
    assert (plan.action, plan.dest_status, plan.check_id) == (verdict.action, verdict.dest_status, verdict.check_id)
    d = plan.as_dict()
    assert (d["action"], d["dest_status"], d["source_status"]) == (str(verdict.action), verdict.dest_status,
                                                                   "readable")


def test_every_failing_verdict_has_an_error_check_blocking_or_a_decisive_unknown():
    # A blocking verdict fails an error check; an unverifiable copy is an unknown of an error check, so it
    # is decisive (checks.registry.decisive): a different value would fail the migration late.
    from checks import REGISTRY
    for v in Verdict:
        if v.check_id is None:
            assert v.action is not BLOCK, v
            continue
        c = REGISTRY.checks[v.check_id]
        assert c.severity == "error", v
        assert (v.action is BLOCK) != (v.check_id == "SECRET-UNVERIFIABLE"), v


# -- wanted_flags ----------------------------------------------------------------------------

@pytest.mark.parametrize("src, policy, expected", [
    (info(private=False, ephemeral=False), SecretPolicy(), (False, False)),
    (info(private=True, ephemeral=True), SecretPolicy(), (True, True)),
    (info(private=True, ephemeral=False), SecretPolicy(), (True, False)),
    (info(private=False, ephemeral=True), SecretPolicy(), (False, True)),
    (info(private=True, ephemeral=False), SecretPolicy(dest_private=False), (False, False)),
    (info(private=False, ephemeral=True), SecretPolicy(dest_private=True), (True, True)),
    (info(private=True, ephemeral=True), SecretPolicy(dest_ephemeral=False), (True, False)),
    (info(private=False, ephemeral=False), SecretPolicy(dest_private=True, dest_ephemeral=True), (True, True)),
])
def test_wanted_flags(src, policy, expected):
    assert wanted_flags(src, policy) == expected


BY_USAGE = SecretRef(uuid=None, usage_type="vtpm", kind=SecretKind.VTPM, location="/domain/devices/tpm[1]",
                     usage_id="VTPM_vm1")


@pytest.mark.parametrize("dst, expected", [
    pytest.param(info(usage_id="VTPM_other"), V.DEST_USAGE_MISMATCH, id="other-usage-id"),
    pytest.param(info(usage_id=None), V.DEST_USAGE_MISMATCH, id="no-usage-id"),
    pytest.param(info(), None, id="same-usage"),
])
def test_a_secret_referenced_by_usage_must_match_its_usage_id(dst, expected):
    assert definition_verdict(BY_USAGE, SRC, dst, POLICY) is expected


# -- from the facts the provisioner gathers to the plan (plan_secret) ------------------------

from coordinator.core.secret_rules import (Comparison, CompareValues, GivenValue, SecretFacts,  # noqa: E402
                                           ValueWhereFrom, plan_secret, value_question)

S_URI, D_URI = "qemu+tls://hv1/system", "qemu+tls://hv2/system"


def facts(src: SecretInfo | None = SRC, dst: SecretInfo | None = None, **kw) -> SecretFacts:
    return SecretFacts(ref=REF, src=src, dst=dst, src_uri=S_URI, dst_uri=D_URI, **kw)


@pytest.mark.parametrize("f, policy, question", [
    pytest.param(facts(dst=None), POLICY, ValueWhereFrom(SRC), id="missing-on-destination-where-from"),
    pytest.param(facts(dst=info()), POLICY, CompareValues(SRC, info()), id="both-have-it-compare"),
    pytest.param(facts(src=None, dst=info()), POLICY, GivenValue(info()), id="gone-an-operator-value-vouches"),
    pytest.param(facts(src=None, dst=None), POLICY, None, id="gone-everywhere-the-definitions-decide"),
    pytest.param(facts(dst=info(private=True)), POLICY, None, id="private-copy-unverifiable-nothing-read"),
    pytest.param(facts(dst=info(private=True)), SecretPolicy(reset_values=True),
                 CompareValues(SRC, info(private=True)), id="private-copy-reset-the-value-is-read"),
    pytest.param(facts(dst=info(), values_allowed=False), POLICY, None, id="plaintext-transport-nothing-read"),
])
def test_value_question_asks_only_what_the_definitions_leave_open(f, policy, question):
    assert value_question(f, policy) == question


@pytest.mark.parametrize("f, policy, verdict, source_status, value_source, reason", [
    pytest.param(facts(dst=None, value_source="source-api"), POLICY, V.PROVISION, "readable", "source-api", "",
                 id="provision"),
    pytest.param(facts(src=PRIV_SRC, dst=None), POLICY, V.NO_VALUE_SOURCE, "private", None,
                 f"secret {U} is private on {S_URI} and no value source has it; give "
                 "--secret-file/--secret-dir/--secret-command/--secret-stdin", id="no-value-source"),
    pytest.param(facts(dst=info(), value_source="source-api", comparison=Comparison.SAME), POLICY, V.MATCH,
                 "readable", "source-api", "", id="match"),
    pytest.param(facts(dst=info(), value_source="source-api", comparison=Comparison.DIFFERENT), POLICY,
                 V.VALUE_MISMATCH, "readable", None,
                 f"secret {U} has a different value on {D_URI} than on {S_URI}; the migration would fail late "
                 "in swtpm", id="value-mismatch"),
    pytest.param(facts(dst=info(), value_source="file:/k", comparison=Comparison.EMPTY), POLICY, V.RESET_VALUE,
                 "readable", "file:/k",
                 f"secret {U} is defined on {D_URI} without a value (an interrupted run?); its value will be set",
                 id="defined-without-a-value-is-reset"),
    pytest.param(facts(dst=info(private=True), value_source="source-api"), SecretPolicy(reset_values=True),
                 V.RESET_VALUE, "readable", "source-api",
                 "destination copy is private; its value will be set (--reset-secret-values)", id="reset-private"),
    pytest.param(facts(dst=info()), POLICY, V.UNVERIFIABLE_NO_VALUE, "readable", None,
                 "no value available here to compare with the destination copy; give it with "
                 "--secret-file/--secret-dir/--secret-command/--secret-stdin", id="no-value-to-compare"),
    pytest.param(facts(dst=info(), values_allowed=False), POLICY, V.VALUE_NOT_READ, "readable", None,
                 f"secret {U}: its value is neither read nor sent: the connection to {S_URI} or {D_URI} is "
                 "unprotected (see SECRET-PLAINTEXT-TRANSPORT)", id="plaintext"),
    pytest.param(facts(src=info(usage_type="volume"), dst=None), POLICY, V.SOURCE_USAGE_MISMATCH,
                 "readable, usage volume", None,
                 f"secret {U} has usage type volume on {S_URI} but the domain needs vtpm", id="source-usage"),
    pytest.param(facts(dst=None, usage_holder="h-uuid"), POLICY, V.DEST_USAGE_TAKEN, "readable", None,
                 f"secret {U} is missing on {D_URI}, but secret h-uuid there already has its usage "
                 "vtpm:'VTPM_vm1': libvirt would refuse to define it (a secret with UUID h-uuid already defined "
                 "for use with that usage)", id="usage-taken"),
    pytest.param(facts(dst=info(ephemeral=True)), SecretPolicy(dest_ephemeral=False), V.EPHEMERAL_MISMATCH,
                 "readable", None, f"secret {U} on {D_URI} has ephemeral=yes, the policy asks for no",
                 id="ephemeral-flag"),
    pytest.param(facts(src=None, dst=None), POLICY, V.MISSING_ON_SOURCE, "missing", None,
                 f"secret {U} is not defined on the source {S_URI} nor on the destination {D_URI}",
                 id="gone-everywhere"),
    pytest.param(facts(src=None, dst=info(), value_source="file:/k", comparison=Comparison.DIFFERENT), POLICY,
                 V.VALUE_MISMATCH, "missing", None,
                 f"secret {U} is not defined on the source {S_URI}; the destination copy {U} has a different "
                 "value than the one given; the migration would fail late in swtpm", id="gone-given-differs"),
    pytest.param(facts(src=None, dst=info(usage_type="volume")), POLICY, V.DEST_USAGE_MISMATCH, "missing", None,
                 f"secret {U} is not defined on the source {S_URI}; the destination copy has usage type volume, "
                 "the domain needs vtpm", id="gone-copy-wrong-type"),
])
def test_plan_secret_from_facts(f, policy, verdict, source_status, value_source, reason):
    p = plan_secret(f, policy)
    assert (p.verdict, p.source_status, p.value_source, p.reason) == (verdict, source_status, value_source, reason)
    # the source's UUID and usage; gone from it, the copy's; gone from both, the reference's (a UUID: no usage id)
    assert (p.uuid, p.usage_id) == (U, "VTPM_vm1" if f.src or f.dst else None)


def test_secret_facts_hold_no_value():
    """What was read is kept as where the value comes from and how it compares, never the value itself."""
    f = facts(dst=info(), value_source="source-api", comparison=Comparison.SAME)
    assert {type(getattr(f, n)) for n in f.__dataclass_fields__} <= {SecretRef, SecretInfo, str, bool, Comparison,
                                                                       type(None)}
