"""steps.provision.SecretProvisioner: a provisioning that fails part-way leaves only what was there before.
Recording fakes (no libvirt): the destination refuses the second definition, as libvirt would for a usage
another secret took after planning (a race planning cannot see; SECRET-USAGE-TAKEN finds it otherwise)."""
from __future__ import annotations

import pytest

from coordinator.core.model import SecretInfo, SecretKind, SecretRef, Verdict
from coordinator.steps.provision import SecretProvisioner

A, B = "6dd3e4a5-1d76-44ce-961f-f119f5aad935", "0b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
REFS = [SecretRef(uuid=A, usage_type="vtpm", kind=SecretKind.VTPM, location="/domain/devices/tpm"),
        SecretRef(uuid=B, usage_type="volume", kind=SecretKind.DISK_ENCRYPTION, location="/domain/devices/disk")]


class Host:
    def __init__(self, uri: str, secrets: dict[str, SecretInfo], refuse: str | None = None,
                 usages: dict[tuple[str, str], str] | None = None) -> None:
        self.uri, self.secrets, self.refuse, self.usages = uri, dict(secrets), refuse, usages or {}
        self.values: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def secret_info(self, uuid: str) -> SecretInfo | None:
        return self.secrets.get(uuid)

    def secret_usages(self) -> dict[tuple[str, str], str]:
        return dict(self.usages)

    def secret_value(self, uuid: str) -> bytes:
        return self.values.get(uuid, b"v" * 32)

    def define_secret(self, xml: str) -> None:
        uuid = A if A in xml else B
        self.calls.append(("define", uuid))
        if uuid == self.refuse:
            raise RuntimeError(f"a secret with UUID {uuid} already defined for use with that usage")
        self.secrets[uuid] = SRC[uuid]

    def set_secret_value(self, uuid: str, value) -> None:
        self.calls.append(("set", uuid))
        self.values[uuid] = bytes(value)

    def undefine_secret(self, uuid: str) -> None:
        self.calls.append(("undefine", uuid))
        self.secrets.pop(uuid, None)


SRC = {A: SecretInfo(A, "vtpm", "vm-vtpm", False, False, f"<secret><uuid>{A}</uuid></secret>"),
       B: SecretInfo(B, "volume", "/img.luks", False, False, f"<secret><uuid>{B}</uuid></secret>")}


def test_second_definition_refused_removes_the_first_and_nothing_else():
    src, dst = Host("qemu+tls://a/system", SRC), Host("qemu+tls://b/system", {}, refuse=B)
    prov = SecretProvisioner(src, dst)  # type: ignore[arg-type]
    plans = prov.plan(REFS)
    assert [p.verdict for p in plans] == [Verdict.PROVISION, Verdict.PROVISION]
    with pytest.raises(RuntimeError):
        prov.apply(plans)
    assert prov.created == [A]
    assert prov.rollback([]) == [A]
    assert dst.secrets == {} and dst.calls == [("define", A), ("set", A), ("define", B), ("undefine", A)]


def test_a_usage_already_held_is_found_while_planning_and_nothing_is_written():
    src = Host("qemu+tls://a/system", SRC)
    dst = Host("qemu+tls://b/system", {}, usages={("volume", "/img.luks"): "ffffffff-0000-4000-8000-000000000001"})
    prov = SecretProvisioner(src, dst)  # type: ignore[arg-type]
    plans = prov.plan(REFS)
    assert [p.verdict for p in plans] == [Verdict.PROVISION, Verdict.DEST_USAGE_TAKEN]
    assert plans[1].check_id == "SECRET-USAGE-TAKEN" and "ffffffff-0000-4000-8000-000000000001" in plans[1].reason
    with pytest.raises(Exception, match="already has its usage"):
        prov.apply(plans)
    assert dst.calls == []
