"""coordinator.hypervisor: error classification, URI check, secret XML parsing;
coordinator.executor: the retry predicate and the tenacity wiring (injected sleep)."""
from __future__ import annotations

import libvirt
import pytest

from coordinator.core.errors import BadInput, HostUnreachable
from coordinator.flows.migrate import RetryPolicy, build_retrying, retryable
from coordinator.core.uris import check_uri
from coordinator.virt.errors import TRANSIENT_ERRORS, Retry, classify, classify_code
                                    is_transient, parse_secret_xml)

T, P = Retry.TRANSIENT, Retry.PERMANENT
ANY_DOMAINS = (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_QEMU, libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_NONE)


def lverr(code: int, domain: int, msg: str = "msg") -> libvirt.libvirtError:
    e = libvirt.libvirtError(msg)
    e.err = (code, domain, msg, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return e


def _transient_cases() -> list:
    cases = []
    for (code, dom), why in TRANSIENT_ERRORS.items():
        for d in (dom,) if dom is not None else ANY_DOMAINS:
            cases.append(pytest.param(code, d, id=f"{code}/{d}:{why}"))
    return cases


@pytest.mark.parametrize("code, domain", _transient_cases())
def test_listed_errors_are_transient(code, domain):
    assert classify_code(code, domain) is T
    assert is_transient(lverr(code, domain))


def test_transient_table_is_exactly_the_reviewed_list():
    assert set(TRANSIENT_ERRORS) == {
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC), (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC), (libvirt.VIR_ERR_NO_CONNECT, None),
        (libvirt.VIR_ERR_OPERATION_TIMEOUT, None), (libvirt.VIR_ERR_AUTH_UNAVAILABLE, None),
        (libvirt.VIR_ERR_NO_SERVER, None)}


@pytest.mark.parametrize("code, domain", [
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_QEMU), (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_REMOTE),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU),
])
def test_rpc_only_entries_are_permanent_elsewhere(code, domain):
    assert classify_code(code, domain) is P


@pytest.mark.parametrize("code, domain", [
    pytest.param(libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_FROM_SECRET, id="secret-missing-on-dst"),
    pytest.param(libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_QEMU, id="wrong-secret-value"),
    pytest.param(libvirt.VIR_ERR_MIGRATE_UNSAFE, libvirt.VIR_FROM_QEMU, id="migrate-unsafe"),
    pytest.param(libvirt.VIR_ERR_CPU_INCOMPATIBLE, libvirt.VIR_FROM_CPU, id="cpu-incompatible"),
    pytest.param(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, id="no-domain"),
    pytest.param(libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_QEMU, id="operation-invalid"),
    pytest.param(libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_FROM_REMOTE, id="auth-failed"),
    pytest.param(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_QEMU, id="system-error-not-rpc"),
    pytest.param(libvirt.VIR_ERR_OK, libvirt.VIR_FROM_NONE, id="ok"),
])
def test_unlisted_errors_are_permanent(code, domain):
    assert classify_code(code, domain) is P
    assert classify(lverr(code, domain, "job 'migration out' unexpectedly failed")) is P
    assert not is_transient(lverr(code, domain))


def test_classify_libvirt_error_uses_err_tuple():
    e = lverr(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, "Cannot recv data: Connection reset")
    assert (e.get_error_code(), e.get_error_domain()) == (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC)
    assert classify(e) is T


def test_classify_libvirt_error_without_err_is_permanent():
    e = libvirt.libvirtError("no details")
    e.err = None
    assert classify(e) is P


@pytest.mark.parametrize("exc", [RuntimeError("boom"), ConnectionResetError(), OSError(5, "io"),
                                 HostUnreachable("x", transient=True)])
def test_non_libvirt_exceptions_are_permanent(exc):
    assert classify(exc) is P
    assert is_transient(exc) is False


@pytest.mark.parametrize("exc, expected", [
    (HostUnreachable("cannot connect", transient=True), True),
    (HostUnreachable("cannot connect", transient=False), False),
    (HostUnreachable("cannot connect"), False),
    (lverr(libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC), True),
    (lverr(libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_FROM_SECRET), False),
    (ValueError("x"), False),
])
def test_retryable(exc, expected):
    assert retryable(exc) is expected


# -- build_retrying with an injected sleep ---------------------------------------------------

POLICY = dict(initial_wait=0.01, max_wait=0.02)


class Flaky:
    def __init__(self, errors: list[BaseException], result: str = "ok") -> None:
        self.errors, self.result, self.calls = list(errors), result, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def transient() -> libvirt.libvirtError:
    return lverr(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, "Connection reset by peer")


def test_retrying_recovers_after_two_transient_failures():
    waits: list[float] = []
    fn = Flaky([transient(), transient()])
    assert build_retrying(RetryPolicy(attempts=4, **POLICY), waits.append)(fn) == "ok"
    assert fn.calls == 3
    assert len(waits) == 2
    assert all(0 <= w <= 0.02 for w in waits)


def test_retrying_does_not_retry_permanent_error():
    waits: list[float] = []
    err = lverr(libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_QEMU)
    fn = Flaky([err])
    with pytest.raises(libvirt.libvirtError) as ei:
        build_retrying(RetryPolicy(attempts=4, **POLICY), waits.append)(fn)
    assert ei.value is err
    assert fn.calls == 1
    assert waits == []


def test_retrying_gives_up_after_attempts_and_reraises():
    waits: list[float] = []
    errs = [transient() for _ in range(10)]
    fn = Flaky(errs)
    with pytest.raises(libvirt.libvirtError) as ei:
        build_retrying(RetryPolicy(attempts=3, **POLICY), waits.append)(fn)
    assert ei.value.get_error_domain() == libvirt.VIR_FROM_RPC  # the original error, not RetryError
    assert fn.calls == 3
    assert len(waits) == 2


# -- check_uri -------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["qemu:///system", "qemu:///session", "qemu+ssh://root@h:2222/system",
                                 "qemu+tls://h/system", "qemu+tcp://127.0.0.1/system?x=y"])
def test_check_uri_accepts(uri):
    assert check_uri(uri) == uri


@pytest.mark.parametrize("uri", ["http://h/system", "qemu://h", "", "qemu:///nonsense", "xen:///system",
                                 "qemu+ssh://h /system", None])
def test_check_uri_rejects(uri):
    with pytest.raises(BadInput) as ei:
        check_uri(uri)
    assert repr(uri) in str(ei.value)


# -- parse_secret_xml ------------------------------------------------------------------------

U = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"


def secret_xml(usage: str, ephemeral: str = "no", private: str = "no", uuid: str = U) -> str:
    return (f"<secret ephemeral='{ephemeral}' private='{private}'><uuid>{uuid}</uuid>"
            f"{usage}</secret>")


@pytest.mark.parametrize("xml, usage_type, usage_id, ephemeral, private", [
    (secret_xml("<usage type='vtpm'><name>VTPM_example</name></usage>", private="yes"),
     "vtpm", "VTPM_example", False, True),
    (secret_xml("<usage type='volume'><volume>/var/lib/libvirt/images/e.qcow2</volume></usage>"),
     "volume", "/var/lib/libvirt/images/e.qcow2", False, False),
    (secret_xml("<usage type='ceph'><name>client.libvirt secret</name></usage>", ephemeral="yes"),
     "ceph", "client.libvirt secret", True, False),
    (secret_xml("<usage type='iscsi'><target>libvirtiscsi</target></usage>", "yes", "yes"),
     "iscsi", "libvirtiscsi", True, True),
    (secret_xml("<usage type='tls'><name>TLS_example</name></usage>"), "tls", "TLS_example", False, False),
    (secret_xml(""), "none", None, False, False),
], ids=["vtpm", "volume", "ceph", "iscsi", "tls", "no-usage"])
def test_parse_secret_xml(xml, usage_type, usage_id, ephemeral, private):
    info = parse_secret_xml(xml)
    assert (info.uuid, info.usage_type, info.usage_id) == (U, usage_type, usage_id)
    assert (info.ephemeral, info.private) == (ephemeral, private)
    assert info.xml == xml


def test_parse_secret_xml_lowercases_uuid():
    info = parse_secret_xml(secret_xml("<usage type='vtpm'><name>v</name></usage>", uuid=U.upper()))
    assert info.uuid == U


def test_parse_secret_xml_without_flags_means_no():
    info = parse_secret_xml(f"<secret><uuid>{U}</uuid><usage type='vtpm'><name>v</name></usage></secret>")
    assert (info.ephemeral, info.private) == (False, False)
