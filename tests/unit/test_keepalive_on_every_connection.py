"""Every connection the tool opens has libvirt keepalive on (issue 21): libvirt's default event loop is
registered and run in a daemon thread once per process, then ``setKeepAlive(interval, count)`` is set on
each connection, so a peer that stops answering ends every call on it with an error instead of a hang.

mock: no libvirtd here — ``libvirt.open`` and the two event-loop functions are replaced by recorders (a
dead peer that makes keepalive fire needs the network-fault lab of issue 22).
"""
from __future__ import annotations

import threading

import libvirt
import pytest

from coordinator.core.params import KEEPALIVE_COUNT, KEEPALIVE_INTERVAL_S
from coordinator.virt import host as host_mod
from coordinator.virt.host import Host


class Conn:
    def __init__(self, refuse: bool = False) -> None:
        self.keepalive: list[tuple[int, int]] = []
        self.refuse = refuse

    def setKeepAlive(self, interval: int, count: int) -> int:
        if self.refuse:
            raise libvirt.libvirtError("this function is not supported by the connection driver")
        self.keepalive.append((interval, count))
        return 0

    def close(self) -> int:
        return 0


@pytest.fixture
def loop(monkeypatch):
    calls = {"register": 0, "run": 0}
    ran = threading.Event()

    def register() -> int:
        calls["register"] += 1
        return 0

    def run_once() -> int:
        calls["run"] += 1
        ran.set()
        threading.Event().wait(0.05)
        return 0

    monkeypatch.setattr(libvirt, "virEventRegisterDefaultImpl", register)
    monkeypatch.setattr(libvirt, "virEventRunDefaultImpl", run_once)
    monkeypatch.setattr(host_mod, "_EVENT_LOOP", None)  # a fresh process as far as the seam knows
    return calls, ran


def test_each_connection_gets_keepalive_and_the_loop_is_registered_once(loop, monkeypatch):
    calls, ran = loop
    conns = [Conn(), Conn()]
    monkeypatch.setattr(libvirt, "open", lambda uri: conns.pop(0) if conns else Conn())
    a, b = Host.open("qemu+tls://hv1.invalid/system"), Host.open("qemu+tls://hv2.invalid/system")
    for h in (a, b):
        assert h._conn.keepalive == [(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)]
    assert calls["register"] == 1
    assert ran.wait(2.0)  # the loop runs, in a daemon thread
    t = host_mod._EVENT_LOOP
    assert t is not None and t.daemon and t.is_alive()


def test_a_connection_without_keepalive_support_still_opens(loop, monkeypatch, caplog):
    monkeypatch.setattr(libvirt, "open", lambda uri: Conn(refuse=True))
    h = Host.open("qemu+tls://hv3.invalid/system")
    assert isinstance(h, Host)


def test_the_keepalive_values_tolerate_a_loaded_host():
    # at least libvirt's own (virsh: 5 s x 6): a dead peer is noticed after interval x (count + 1) s
    assert KEEPALIVE_INTERVAL_S >= 5 and KEEPALIVE_COUNT >= 5
    assert KEEPALIVE_INTERVAL_S * (KEEPALIVE_COUNT + 1) <= 60
