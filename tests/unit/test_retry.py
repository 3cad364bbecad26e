"""coordinator.steps.retry: the retry predicate and the tenacity wiring (injected sleep, no real waits)."""
from __future__ import annotations

import libvirt
import pytest

from coordinator.core.errors import HostUnreachable
from coordinator.steps.journal import Journal
from coordinator.steps.retry import RetryPolicy, build_retrying, retryable


def lverr(code: int, domain: int, msg: str = "msg") -> libvirt.libvirtError:
    e = libvirt.libvirtError(msg)
    e.err = (code, domain, msg, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return e


@pytest.mark.parametrize("exc, expected", [
    (HostUnreachable("cannot connect", transient=True), True),
    (HostUnreachable("cannot connect", transient=False), False),
    (HostUnreachable("cannot connect"), False),
    (lverr(libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC), True),
    (lverr(libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_FROM_SECRET), False),
    (ValueError("x"), False),
])
def test_only_transient_errors_are_retried(exc, expected):
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


def test_retrying_a_transient_host_unreachable():
    waits: list[float] = []
    fn = Flaky([HostUnreachable("cannot connect", transient=True)])
    assert build_retrying(RetryPolicy(attempts=2, **POLICY), waits.append)(fn) == "ok"
    assert fn.calls == 2 and len(waits) == 1


def test_each_retry_wait_is_journaled():
    journal = Journal()
    fn = Flaky([transient(), transient()])
    build_retrying(RetryPolicy(attempts=4, **POLICY), lambda s: None, journal)(fn)
    waits = [r for r in journal.events if r["event"] == "retry-wait"]
    assert [r["attempt"] for r in waits] == [1, 2]
    assert all("VIR_ERR_SYSTEM_ERROR/VIR_FROM_RPC" in r["error"] for r in waits)
