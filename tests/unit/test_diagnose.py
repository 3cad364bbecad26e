"""coordinator.steps.diagnose: the probable cause of a late failure, from logs and the plan (pure)."""
from __future__ import annotations

import pytest

from coordinator.core.model import SecretKind, SecretPlan, SecretRef, Verdict
from coordinator.steps.diagnose import evidence_lines, explain, is_generic

GENERIC = "operation failed: job 'migration out' unexpectedly failed [VIR_ERR_OPERATION_FAILED/VIR_FROM_QEMU]"
SWTPM_BAD_KEY = ("2026-11-27 11:00:01 swtpm: starting\n"
                 "Decrypting the permall blob with the migration key failed.\n"
                 "swtpm: error: could not load state\n")
U = "7c5b4f0e-1111-4222-8333-944455556666"


def plan(verdict: Verdict, kind: SecretKind = SecretKind.VTPM) -> SecretPlan:
    ref = SecretRef(uuid=U, usage_type="vtpm" if kind is SecretKind.VTPM else "volume", kind=kind,
                    location="/domain/devices/tpm[1]/backend/encryption/@secret")
    return SecretPlan(ref=ref, uuid=U, verdict=verdict, source_status="readable")


@pytest.mark.parametrize("error, generic", [
    (GENERIC, True),
    ("internal error: process exited while connecting to monitor", True),
    ("Secret not found: no secret with matching uuid 'x' [VIR_ERR_NO_SECRET/VIR_FROM_SECRET]", False),
    ("Unsafe migration: Migration without shared storage is unsafe", False),
])
def test_only_the_generic_late_failure_messages_count_as_generic(error, generic):
    assert is_generic(error) is generic


def test_evidence_keeps_error_lines_only_and_the_last_few():
    text = "\n".join(["ok line"] * 3 + [f"error {i}" for i in range(10)])
    assert evidence_lines(text, limit=3) == ["error 7", "error 8", "error 9"]
    assert evidence_lines("") == []


@pytest.mark.parametrize("swtpm, plans, cause_has, evidence_count", [
    pytest.param(SWTPM_BAD_KEY, [plan(Verdict.MATCH)], "could not decrypt", 2, id="swtpm-says-so"),
    pytest.param(SWTPM_BAD_KEY, [plan(Verdict.UNVERIFIABLE_PRIVATE)], "could not compare", 2, id="both"),
    pytest.param("", [plan(Verdict.UNVERIFIABLE_PRIVATE)], "differs", 0, id="plan-only"),
    pytest.param("", [plan(Verdict.UNVERIFIABLE_NO_VALUE)], "different value", 0, id="no-value-to-compare"),
])
def test_secret_value_causes(swtpm, plans, cause_has, evidence_count):
    d = explain(GENERIC, swtpm, "", plans, "qemu+ssh://dst/system")
    assert d.known and cause_has in d.cause and U in d.cause
    assert "--reset-secret-values" in d.hint
    assert len(d.evidence) == evidence_count
    assert all(e.startswith("qemu+ssh://dst/system: swtpm: ") for e in d.evidence)


def test_nothing_known_says_nothing():
    d = explain(GENERIC, "", "", [plan(Verdict.MATCH)], "dst")
    assert not d.known and d.evidence == () and d.hint == ""


def test_a_specific_libvirt_error_is_not_blamed_on_an_unverified_secret():
    d = explain("Unsafe migration: Migration without shared storage is unsafe", "", "",
                [plan(Verdict.UNVERIFIABLE_PRIVATE)], "dst")
    assert not d.known


def test_qemu_log_lines_are_evidence_without_a_secret_story():
    d = explain(GENERIC, "", "qemu-system-x86_64: error: failed to set MSR 0x10a\n", [plan(Verdict.MATCH)], "dst")
    assert d.known and d.evidence == ("dst: qemu: qemu-system-x86_64: error: failed to set MSR 0x10a",)
    assert "secret" not in d.cause


def test_a_disk_secret_is_not_the_vtpm_story():
    d = explain(GENERIC, "", "", [plan(Verdict.UNVERIFIABLE_PRIVATE, SecretKind.DISK_ENCRYPTION)], "dst")
    assert not d.known


def test_qemus_own_decryption_error_tells_the_story_without_logs():
    error = ("internal error: qemu unexpectedly closed the monitor: tpm-emulator: Setting the stateblob (type 1) "
             "failed with a TPM error 0x21 decryption error [VIR_ERR_INTERNAL_ERROR/VIR_FROM_QEMU]")
    d = explain(error, "", "", [plan(Verdict.UNVERIFIABLE_PRIVATE)], "dst")
    assert d.known and "could not decrypt" in d.cause and U in d.cause and "--reset-secret-values" in d.hint
