"""steps.lease.LeaseKeeper.take: the look before the write, the read-back after it.

A fake Guest (metadata kept in a dict): two coordinators writing the same domain's metadata within
one round trip cannot be produced on demand on the lab, so the interleavings are played here.
"""
from __future__ import annotations

import time

import pytest
from lease_fakes import MetadataGuest, RecordingJournal

from coordinator.core.errors import Busy
from coordinator.core.lease_rules import NAMESPACE, Lease, format_lease
from coordinator.steps.lease import LeaseKeeper, read_lease


def other(expires: float, host: str = "elsewhere.example") -> str:
    return format_lease(Lease(run_id="run-b", control_host=host, pid=1, started=time.time(), expires=expires,
                              dest="qemu+tls://hv9/system", pid_start=0))


def keeper(settle=lambda: None) -> LeaseKeeper:
    return LeaseKeeper("run-a", "qemu+tls://hv2/system", time.time, RecordingJournal(), settle=settle)


def test_free_domain_is_taken_and_read_back():
    g, k = MetadataGuest(), keeper()
    k.take(g, 600)
    assert k.held and read_lease(g).run_id == "run-a" and g.writes == 1


def test_a_live_lease_written_since_the_run_looked_is_never_overwritten():
    g = MetadataGuest(other(time.time() + 600))
    with pytest.raises(Busy, match="while this run was checking"):
        keeper().take(g, 600)
    assert g.writes == 0 and read_lease(g).run_id == "run-b"


def test_an_expired_lease_is_taken_over():
    g, k = MetadataGuest(other(time.time() - 1)), keeper()
    k.take(g, 600)
    assert read_lease(g).run_id == "run-a"


def test_a_writer_inside_the_settle_window_wins_and_this_run_backs_off():
    g = MetadataGuest()
    k = keeper(settle=lambda: g.set_metadata(NAMESPACE, "mc", other(time.time() + 600)))
    with pytest.raises(Busy, match="at the same moment"):
        k.take(g, 600)
    assert not k.held and read_lease(g).run_id == "run-b"
    assert not k.release(g, "src")  # never removes anyone else's lease
