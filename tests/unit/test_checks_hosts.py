"""checks.hosts: the host-level checks, run against fake hosts (no libvirt connection)."""
from __future__ import annotations

import pytest
from check_fakes import StubHost, context

from checks.context import CheckContext
from checks.hosts import host_reachable, host_same, hypervisor_version, libvirt_version, plaintext_transport
from coordinator.core.secret_rules import SecretPolicy
from coordinator.steps.parameters import MigrateOptions

SRC, DST = "qemu+ssh://hv1/system", "qemu+ssh://hv2/system"


def fake_host(uri: str, lib: int = 9_000_000, qemu: int = 7_002_000, host_uuid: str = "h") -> StubHost:
    return StubHost(uri, lib_version=lambda: lib, hypervisor_version=lambda: qemu, host_uuid=lambda: host_uuid)


def ctx(src: StubHost | None = None, dst: StubHost | None = None, **kw) -> CheckContext:
    src = src or fake_host(SRC, host_uuid="h1")
    dst = dst or fake_host(DST, host_uuid="h2")
    return context(src=src, dst=dst, src_uri=src.uri, dst_uri=dst.uri, **kw)


def as_list(results) -> list:
    return results if isinstance(results, list) else [results]


@pytest.mark.parametrize("src, dst, allow, status", [
    ("qemu+tcp://127.0.0.41/system", "qemu+tcp://127.0.0.42/system", False, "pass"),
    ("qemu:///system", "qemu+ssh://hv2/system", False, "pass"),
    ("qemu:///system", "qemu+tcp://hv2.example/system", False, "fail"),
    ("qemu:///system", "qemu+tcp://hv2.example/system", True, "pass"),
    ("qemu+tcp://10.0.0.1/system", "qemu+tls://hv2/system", False, "fail"),   # the source side counts too
])
def test_plaintext_transport_check(src, dst, allow, status):
    r = plaintext_transport(context(src_uri=src, dst_uri=dst, options=MigrateOptions(
        secret_policy=SecretPolicy(allow_plaintext=allow))))
    assert r.status == status


@pytest.mark.parametrize("errors, statuses", [
    ({}, {SRC: "pass", DST: "pass"}),
    ({DST: "cannot connect"}, {SRC: "pass", DST: "fail"}),
    ({SRC: "a", DST: "b"}, {SRC: "fail", DST: "fail"}),
])
def test_host_reachable(errors, statuses):
    got = as_list(host_reachable(ctx(connect_errors=errors)))
    assert {r.subject: r.status for r in got} == statuses


@pytest.mark.parametrize("src_v, dst_v, statuses", [
    (9_000_000, 9_000_000, ("pass", "pass")),
    (7_001_000, 7_001_000, ("pass", "pass")),       # the minimum itself is enough
    (7_000_999, 9_000_000, ("fail", "pass")),
    (9_000_000, 6_010_000, ("pass", "fail")),
])
def test_libvirt_version(src_v, dst_v, statuses):
    got = as_list(libvirt_version(ctx(fake_host(SRC, lib=src_v), fake_host(DST, lib=dst_v))))
    assert tuple(r.status for r in got) == statuses
    assert [r.subject for r in got] == [SRC, DST]


@pytest.mark.parametrize("a, b, status", [("h1", "h2", "pass"), ("h1", "h1", "fail")])
def test_host_same(a, b, status):
    r = host_same(ctx(fake_host(SRC, host_uuid=a), fake_host(DST, host_uuid=b)))
    assert r.status == status


@pytest.mark.parametrize("src_v, dst_v, status", [
    (7_002_000, 7_002_000, "pass"),
    (7_002_000, 8_000_000, "pass"),
    (8_000_000, 7_002_000, "fail"),
])
def test_hypervisor_version(src_v, dst_v, status):
    r = hypervisor_version(ctx(fake_host(SRC, qemu=src_v), fake_host(DST, qemu=dst_v)))
    assert r.status == status
