"""coordinator.steps.provision: the one place that reads or writes secret values over a connection
enforces the transport rule (issue #12) — whatever entry point built it (evacuate's plan, the
checks, a library caller). The hosts here are recording fakes (no libvirt): the observable is
which value calls were made."""
from __future__ import annotations

import pytest

from coordinator.core.errors import Blocked
from coordinator.core.model import SecretInfo, SecretKind, SecretRef, Verdict
from coordinator.core.secret_rules import SecretPolicy
from coordinator.steps.keys import KeyRing, ValueSource
from coordinator.steps.provision import SecretProvisioner

U = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
REF = SecretRef(uuid=U, usage_type="vtpm", kind=SecretKind.VTPM, location="/domain/devices/tpm")


class RecordingHost:
    """Answers definitions; records every value read/write (the calls that carry a value)."""

    def __init__(self, uri: str, value: bytes | None) -> None:
        self.uri, self.value, self.calls = uri, value, []

    def secret_info(self, uuid: str) -> SecretInfo | None:
        if self.value is None:
            return None
        return SecretInfo(uuid=uuid, usage_type="vtpm", usage_id="vm", ephemeral=False, private=False, xml="")

    def secret_value(self, uuid: str) -> bytes:
        self.calls.append(("get", uuid))
        assert self.value is not None
        return self.value

    def secret_value_if_set(self, uuid: str) -> bytes | None:
        self.calls.append(("get", uuid))
        return self.value

    def set_secret_value(self, uuid: str, value: bytes) -> None:
        self.calls.append(("set", uuid))

    def define_secret(self, xml: str) -> None:
        self.calls.append(("define", xml))

    def secret_usages(self) -> dict[tuple[str, str], str]:
        return {}  # definitions only: no value is read or sent by listing usages


class RecordingRing(KeyRing):
    def __init__(self) -> None:
        super().__init__([ValueSource("stdin", "-", U)])
        self.asked: list[str] = []

    def value_for(self, uuid: str):  # type: ignore[override]
        self.asked.append(uuid)
        return None


@pytest.mark.parametrize("src_uri, dst_uri", [
    ("qemu+tcp://hv1.example.com/system", "qemu+tcp://hv2.example.com/system"),
    ("qemu+tls://hv1.example.com/system", "qemu+tls://hv2.example.com/system?no_verify=1"),
    ("qemu+ssh://hv1.example.com/system?no_verify=1", "qemu+ssh://hv2.example.com/system"),
])
@pytest.mark.parametrize("dst_has_copy", [True, False])
def test_no_value_is_read_or_sent_over_an_unprotected_channel(src_uri, dst_uri, dst_has_copy):
    src = RecordingHost(src_uri, b"src-value")
    dst = RecordingHost(dst_uri, b"other-value" if dst_has_copy else None)
    ring = RecordingRing()
    prov = SecretProvisioner(src, dst, keyring=ring)  # type: ignore[arg-type]

    [plan] = prov.plan([REF])

    assert plan.verdict is Verdict.VALUE_NOT_READ
    assert plan.dest_status not in ("match", "value-mismatch")
    assert plan.check_id == "SECRET-PLAINTEXT-TRANSPORT"
    assert src.calls == [] and dst.calls == [] and ring.asked == []
    with pytest.raises(Blocked, match="--allow-plaintext-secrets"):
        prov.apply([plan])
    assert dst.calls == []


def test_allow_plaintext_is_the_only_override():
    src = RecordingHost("qemu+tcp://hv1.example.com/system", b"v")
    dst = RecordingHost("qemu+tcp://hv2.example.com/system", b"v")
    prov = SecretProvisioner(src, dst, policy=SecretPolicy(allow_plaintext=True))  # type: ignore[arg-type]
    [plan] = prov.plan([REF])
    assert plan.verdict is Verdict.MATCH
    assert src.calls == [("get", U)] and dst.calls == [("get", U)]


def test_protected_channels_compare_values():
    src = RecordingHost("qemu+tls://hv1.example.com/system", b"v")
    dst = RecordingHost("qemu+ssh://hv2.example.com/system", b"w")
    [plan] = SecretProvisioner(src, dst).plan([REF])  # type: ignore[arg-type]
    assert plan.verdict is Verdict.VALUE_MISMATCH


def test_source_api_values_are_wiped_when_the_run_ends():
    src = RecordingHost("qemu+tls://hv1.example.com/system", b"SRC-VALUE")
    dst = RecordingHost("qemu+tls://hv2.example.com/system", b"SRC-VALUE")
    ring = KeyRing()
    with ring.held():
        prov = SecretProvisioner(src, dst, keyring=ring)  # type: ignore[arg-type]
        [plan] = prov.plan([REF])
        assert plan.verdict is Verdict.MATCH
        held = prov.source.api_value(U)  # cached: no second read
        assert bytes(held.data) == b"SRC-VALUE" and src.calls == [("get", U)]
    assert held.wiped and bytes(held.data) == bytes(9)
