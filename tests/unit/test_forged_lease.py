"""A lease in a domain's metadata is untrusted (whoever may edit the domain can write it): every field
is checked against what migcoord writes, expiries are bounded by the longest lease migcoord writes,
an invalid lease is no claim and never ours, and only a lease naming this destination is adopted.

Pure functions and a fake Guest: what a real tenant-written ``<metadata>`` does end to end is the lab's
(``virsh metadata --set`` on a running domain, then ``migrate``/``evacuate``)."""
from __future__ import annotations

import time

import pytest
from lease_fakes import MetadataGuest, RecordingJournal

from coordinator.core.errors import BadInput
from coordinator.core.lease_rules import (CLOCK_SKEW_S, MAX_TTL_S, NAMESPACE, JobAction, Lease, LeaseState,
                                    attempt_ttl, format_lease, job_action, lease_state, parse_lease)
from coordinator.core.params import MAX_DEADLINE_S, Deadlines, deadlines
from coordinator.steps.lease import LeaseKeeper, decide, read_lease, this_host
from coordinator.virt.guest import JobInfo

DST = "qemu+tls://hv2/system"
NOW = 1_800_000_000.0
MIGRATING = JobInfo(active=True, data_total=1, data_processed=0, data_remaining=1, elapsed_ms=5,
                    mem_bps=0, operation="migration-out")


def element(**over: str) -> str:
    a = {"run": "run-b", "host": "other-ctl", "pid": "4242", "pid-start": "0", "started": f"{NOW - 10:.3f}",
         "expires": f"{NOW + 600:.3f}", "dest": DST, **over}
    return "<lease " + " ".join(f"{k}='{v}'" for k, v in a.items()) + "/>"


# -- a forged expiry ------------------------------------------------------------------------------

def test_a_lease_expiring_in_year_5138_does_not_hold_a_free_domain():
    own = decide(None, parse_lease(element(expires="99999999999")), DST, NOW)
    assert own.action is JobAction.PROCEED and own.state is LeaseState.INVALID
    assert "later than any lease migcoord writes" in own.message
    assert f"virsh metadata DOMAIN {NAMESPACE} --remove" in own.message and "\n" not in own.message


@pytest.mark.parametrize("expires", ["1e17", "100000000000000000", "inf", "nan", "-1", "1.5e9", " 2000000000",
                                     "100000000000"])
def test_an_expiry_that_is_not_a_plain_time_is_one_clear_line_not_a_traceback(expires):
    own = decide(None, parse_lease(element(expires=expires)), DST, NOW)
    assert own.action is JobAction.PROCEED and own.state is LeaseState.INVALID
    assert "expires=" in own.message and "not what migcoord writes" in own.message


def test_an_invalid_lease_on_a_running_job_blocks_as_not_migcoords_and_is_never_adopted():
    own = decide(MIGRATING, parse_lease(element(expires="99999999999")), DST, NOW)
    assert own.action is JobAction.BLOCK and "not started by migcoord" in own.message


def test_the_longest_lease_migcoord_writes_is_valid_and_one_past_it_is_not():
    longest = attempt_ttl(Deadlines(completion_s=MAX_DEADLINE_S, stall_s=MAX_DEADLINE_S))
    assert longest == MAX_TTL_S
    ok = Lease("run-b", "other-ctl", 4242, NOW, NOW + MAX_TTL_S + CLOCK_SKEW_S, DST)
    assert lease_state(ok, NOW, "ctl", None) is LeaseState.LIVE
    too_long = Lease("run-b", "other-ctl", 4242, NOW, NOW + MAX_TTL_S + CLOCK_SKEW_S + 1, DST)
    assert lease_state(too_long, NOW, "ctl", None) is LeaseState.INVALID


def test_a_lease_started_in_the_future_is_invalid():
    assert decide(None, parse_lease(element(started=f"{NOW + 3600:.3f}", expires=f"{NOW + 3700:.3f}")),
                  DST, NOW).state is LeaseState.INVALID


@pytest.mark.parametrize("timeout, stall", [(MAX_DEADLINE_S + 1, 150.0), (60.0, MAX_DEADLINE_S + 1)])
def test_a_deadline_longer_than_the_longest_lease_allows_is_refused(timeout, stall):
    with pytest.raises(BadInput, match="at most"):
        deadlines(0, completion_s=timeout, stall_s=stall)


def test_a_scaled_deadline_is_capped_so_its_lease_stays_valid():
    d = deadlines(2**60)  # an exabyte guest at 800 s/GiB
    assert d.completion_s == MAX_DEADLINE_S and attempt_ttl(d) <= MAX_TTL_S


# -- forged fields --------------------------------------------------------------------------------

@pytest.mark.parametrize("over, words", [
    ({"run": "r\nFORGED line"}, "run="),
    ({"run": "x" * 65}, "run="),
    ({"host": "evil host"}, "host="),
    ({"host": "h\u202eevil"}, "host="),
    ({"pid": "0"}, "pid=0"),
    ({"pid": "99999999"}, "pid=99999999"),
    ({"pid": "-1"}, "pid='-1'"),
    ({"pid-start": "x"}, "pid-start="),
    ({"dest": "qemu+tls://hv2/system bogus"}, "dest="),
    ({"started": f"{NOW + 700:.3f}"}, "before it started"),
])
def test_every_field_is_checked_against_what_migcoord_writes(over, words):
    lease = parse_lease(element(**over))
    assert lease is not None and words in lease.problem and "\n" not in lease.problem
    assert lease_state(lease, NOW, "ctl", None) is LeaseState.INVALID
    assert "\n" not in decide(None, lease, DST, NOW).message


# -- adoption -------------------------------------------------------------------------------------

def test_an_expired_lease_without_a_destination_is_never_adopted():
    lease = parse_lease(element(dest="", started=f"{NOW - 900:.3f}", expires=f"{NOW - 300:.3f}"))
    assert lease is not None and not lease.problem
    action, why = job_action(True, "migration-out", lease, LeaseState.EXPIRED, DST)
    assert action is JobAction.BLOCK and "not going to this destination" in why


def test_an_expired_lease_naming_another_destination_is_never_adopted():
    lease = parse_lease(element(dest="qemu+tls://hv9/system", expires=f"{NOW - 1:.3f}"))
    assert decide(MIGRATING, lease, DST, NOW).action is JobAction.BLOCK


def test_an_expired_lease_naming_this_destination_is_adopted():
    lease = parse_lease(element(expires=f"{NOW - 1:.3f}"))
    assert decide(MIGRATING, lease, DST, NOW).action is JobAction.ADOPT


def test_an_invalid_lease_is_never_adopted_even_when_its_owner_looks_dead():
    stand_in = parse_lease(element(host=this_host(), pid="0", expires=f"{NOW - 1:.3f}"))
    action, _ = job_action(True, "migration-out", stand_in, LeaseState.OWNER_DEAD, DST)
    assert action is JobAction.BLOCK


# -- the keeper: an invalid lease is no claim, and never ours ---------------------------------------

def test_a_forged_everlasting_lease_is_replaced_by_a_real_run_and_journalled():
    g, j = MetadataGuest(element(expires="100000000000", started=f"{time.time():.3f}")), RecordingJournal()
    k = LeaseKeeper("run-a", DST, time.time, j)
    k.take(g, 600)
    assert k.held and read_lease(g).run_id == "run-a" and "lease-invalid-replaced" in j.events


def test_an_invalid_lease_is_never_released_as_ours():
    g = MetadataGuest(element(run="run-a", pid="0"))
    assert not LeaseKeeper("run-a", DST, time.time, RecordingJournal()).release(g, "src")
    assert g.element is not None


def test_our_own_longest_lease_reads_back_valid_and_a_longer_one_is_never_written():
    g, k = MetadataGuest(), LeaseKeeper("run-a", DST, time.time, RecordingJournal())
    k.take(g, 600)
    k.extend(g, MAX_TTL_S)
    assert decide(None, read_lease(g), DST, time.time()).state is not LeaseState.INVALID
    with pytest.raises(ValueError):
        k.extend(g, MAX_TTL_S + 1)


def test_a_lease_the_tool_formats_round_trips_valid():
    lease = Lease("0123456789ab", "hv1.example.org", 4242, NOW, NOW + 600, DST, 12345)
    assert parse_lease(format_lease(lease)) == lease
