"""coordinator.virt.errors: which libvirt errors are transient (retried) and which permanent,
and the one-line summary of an error."""
from __future__ import annotations

import libvirt
import pytest

from coordinator.core.errors import HostUnreachable
from coordinator.virt.errors import TRANSIENT_ERRORS, Retry, classify, classify_code, error_summary, is_transient

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


@pytest.mark.parametrize("code, domain", [
    pytest.param(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, id="connection-reset"),
    pytest.param(libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC, id="peer-went-away"),
    pytest.param(libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC, id="client-socket-closed"),
    pytest.param(libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_FROM_REMOTE, id="no-connection"),
    pytest.param(libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_FROM_QEMU, id="state-change-lock"),
    pytest.param(libvirt.VIR_ERR_NO_SERVER, libvirt.VIR_FROM_RPC, id="daemon-starting"),
])
def test_known_transient_failures_are_retried(code, domain):
    """Failures seen in the field that go away by themselves (written out, not read from the table)."""
    assert classify(lverr(code, domain)) is T


@pytest.mark.parametrize("code, domain, msg, expected", [
    (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC, "Cannot recv data\nsecond line",
     "Cannot recv data [VIR_ERR_RPC/VIR_FROM_RPC]"),
    (libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_FROM_SECRET, "  no secret with matching uuid  ",
     "no secret with matching uuid [VIR_ERR_NO_SECRET/VIR_FROM_SECRET]"),
    (99999, 99998, "odd", "odd [99999/99998]"),
])
def test_error_summary_of_libvirt_errors(code, domain, msg, expected):
    assert error_summary(lverr(code, domain, msg)) == expected


def test_error_summary_of_other_exceptions():
    assert error_summary(ValueError("bad value")) == "bad value"
    e = libvirt.libvirtError("no details")
    e.err = None
    assert error_summary(e) == "no details [None/None]"


def test_error_summary_of_libvirt_error_with_empty_message():
    assert error_summary(lverr(libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU, "")) \
        == "libvirt gave no message [VIR_ERR_INTERNAL_ERROR/VIR_FROM_QEMU]"
