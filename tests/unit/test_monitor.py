"""coordinator.steps.monitor.deadline_action: the pure decision at each poll of a migration job
(continue, switch to post-copy once, or abort). No threads, no clock: times are given."""
from __future__ import annotations

import pytest

from coordinator.core.params import Deadlines, MigrationPolicy
from coordinator.steps.monitor import Progress, deadline_action

LIMITS = Deadlines(completion_s=100.0, stall_s=30.0)
PRECOPY = MigrationPolicy()
POSTCOPY = MigrationPolicy(postcopy=True)
TOTAL = 1000


@pytest.mark.parametrize("p, now, total, remaining, policy, action, why, after", [
    pytest.param(Progress(0, 0), 10, TOTAL, 900, PRECOPY, "continue", "", Progress(0, 10, 900),
                 id="first-progress"),
    pytest.param(Progress(0, 0, 500), 20, TOTAL, 400, PRECOPY, "continue", "", Progress(0, 20, 400),
                 id="shrinking"),
    pytest.param(Progress(0, 0, 500), 100, TOTAL, 500, PRECOPY, "abort", "made no progress for 30s",
                 Progress(0, 0, 500), id="stall"),
    pytest.param(Progress(0, 0, 500), 30, TOTAL, 500, PRECOPY, "continue", "", Progress(0, 0, 500),
                 id="stall-limit-itself-is-not-a-stall"),
    pytest.param(Progress(0, 0, 500), 31, TOTAL, 600, PRECOPY, "abort", "made no progress for 30s",
                 Progress(0, 0, 500), id="growing-is-no-progress"),
    pytest.param(Progress(0, 0, 500), 31, TOTAL, 499, PRECOPY, "continue", "", Progress(0, 31, 499),
                 id="progress-resets-the-stall-clock"),
    pytest.param(Progress(0, 95, 100), 101, TOTAL, 50, PRECOPY, "abort", "did not complete within 100s",
                 Progress(0, 101, 50), id="completion-deadline-despite-progress"),
    pytest.param(Progress(0, 95, 100), 100, TOTAL, 50, PRECOPY, "continue", "", Progress(0, 100, 50),
                 id="completion-limit-itself-is-in-time"),
    pytest.param(Progress(0, 95, 100), 101, TOTAL, 50, POSTCOPY, "postcopy", "did not complete within 100s",
                 Progress(101, 101, 50, True), id="completion-postcopy-restarts-the-clocks"),
    pytest.param(Progress(0, 0, 500), 31, TOTAL, 500, POSTCOPY, "postcopy", "made no progress for 30s",
                 Progress(31, 31, 500, True), id="stall-postcopy"),
    pytest.param(Progress(101, 101, 50, True), 202, TOTAL, 10, POSTCOPY, "abort", "did not complete within 100s",
                 Progress(101, 202, 10, True), id="after-the-switch-abort"),
    pytest.param(Progress(101, 101, 50, True), 150, TOTAL, 10, POSTCOPY, "continue", "",
                 Progress(101, 150, 10, True), id="after-the-switch-in-time"),
    pytest.param(Progress(0, 0), 31, 0, 0, PRECOPY, "abort", "made no progress for 30s", Progress(0, 0),
                 id="not-started-stalls"),
    pytest.param(Progress(0, 0), 31, 0, 0, POSTCOPY, "abort", "made no progress for 30s", Progress(0, 0),
                 id="not-started-abort-not-postcopy"),
    pytest.param(Progress(0, 0), 101, 0, 0, POSTCOPY, "abort", "did not complete within 100s", Progress(0, 0),
                 id="not-started-completion-abort-not-postcopy"),
    pytest.param(Progress(0, 0, 500), 31, TOTAL, 500, MigrationPolicy(postcopy=True, live=False), "abort",
                 "made no progress for 30s", Progress(0, 0, 500), id="offline-never-postcopy"),
])
def test_deadline_action(p, now, total, remaining, policy, action, why, after):
    assert deadline_action(p, now, total, remaining, LIMITS, policy) == (action, why, after)


def run(policy: MigrationPolicy, polls: list[tuple[float, int, int]]) -> list[str]:
    """The actions of consecutive polls (now, data_total, data_remaining), carrying the progress
    forward as the monitor does; stops at the first abort."""
    p = Progress(0, 0)
    actions = []
    for now, total, remaining in polls:
        action, _, p = deadline_action(p, now, total, remaining, LIMITS, policy)
        actions.append(action)
        if action == "abort":
            break
    return actions


@pytest.mark.parametrize("policy, polls, actions", [
    pytest.param(POSTCOPY, [(10, TOTAL, 900), (50, TOTAL, 500), (90, TOTAL, 100), (101, TOTAL, 90),
                            (150, TOTAL, 80), (202, TOTAL, 70)],
                 ["continue"] * 3 + ["postcopy", "continue", "abort"], id="postcopy-once-then-abort"),
    pytest.param(POSTCOPY, [(10, TOTAL, 900), (45, TOTAL, 900), (70, TOTAL, 900), (76, TOTAL, 900)],
                 ["continue", "postcopy", "continue", "abort"], id="stall-then-postcopy-then-stall-again"),
    pytest.param(PRECOPY, [(10, TOTAL, 900), (50, TOTAL, 500), (90, TOTAL, 100), (101, TOTAL, 90)],
                 ["continue"] * 3 + ["abort"], id="precopy-aborts"),
    pytest.param(POSTCOPY, [(10, 0, 0), (20, 0, 0), (31, 0, 0)], ["continue", "continue", "abort"],
                 id="never-started"),
])
def test_deadline_actions_over_consecutive_polls(policy, polls, actions):
    assert run(policy, polls) == actions


SUSPEND = MigrationPolicy(on_deadline="suspend")
ASK_POSTCOPY = MigrationPolicy(on_deadline="postcopy")
ABORT_EVEN_WITH_POSTCOPY = MigrationPolicy(postcopy=True, on_deadline="abort")


@pytest.mark.parametrize("p, now, total, remaining, policy, action, after", [
    pytest.param(Progress(0, 95, 100), 101, TOTAL, 50, SUSPEND, "suspend",
                 Progress(101, 101, 50, False, True), id="suspend-once-restarts-the-clocks"),
    pytest.param(Progress(101, 101, 50, False, True), 202, TOTAL, 50, SUSPEND, "abort",
                 Progress(101, 101, 50, False, True), id="suspended-and-still-late-abort"),
    pytest.param(Progress(0, 0, 500), 31, TOTAL, 500, SUSPEND, "suspend",
                 Progress(31, 31, 500, False, True), id="stall-suspend"),
    pytest.param(Progress(0, 95, 100), 101, TOTAL, 50, ASK_POSTCOPY, "postcopy",
                 Progress(101, 101, 50, True), id="on-deadline-postcopy-without-the-postcopy-flag"),
    pytest.param(Progress(0, 95, 100), 101, 0, 0, ASK_POSTCOPY, "abort",
                 Progress(0, 95, 100), id="postcopy-impossible-before-data-flows"),
    pytest.param(Progress(0, 95, 100), 101, TOTAL, 50, ABORT_EVEN_WITH_POSTCOPY, "abort",
                 Progress(0, 101, 50), id="explicit-abort-wins-over-postcopy-allowed"),
    pytest.param(Progress(0, 95, 100), 101, TOTAL, 50, MigrationPolicy(live=False, on_deadline="suspend"), "abort",
                 Progress(0, 101, 50), id="offline-never-suspends"),
])
def test_on_deadline_choices(p, now, total, remaining, policy, action, after):
    got, _why, progress = deadline_action(p, now, total, remaining, LIMITS, policy)
    assert (got, progress) == (action, after)


def test_a_max_downtime_call_that_never_returns_does_not_stop_the_deadlines():
    """Seen under TCG on a loaded host: virDomainMigrateSetMaxDowntime waited minutes for a starved QEMU's
    monitor, and the monitor (which made the call) stopped enforcing --timeout. A fake guest plays that
    (it cannot be produced on demand): the call blocks until the test ends, the job never progresses."""
    import threading

    from coordinator.core.params import Deadlines
    from coordinator.steps.monitor import JobMonitor
    from coordinator.virt.guest import JobInfo

    release, aborted = threading.Event(), threading.Event()

    class StuckGuest:
        def job(self):
            return JobInfo(active=True, data_total=100, data_processed=10, data_remaining=90, elapsed_ms=1,
                           mem_bps=1)

        def set_max_downtime(self, ms):
            release.wait(30)

        def abort_job(self):
            aborted.set()

    clock = iter(range(0, 10_000)).__next__  # one second per reading
    events: list[dict] = []
    mon = JobMonitor(StuckGuest(), events.append, Deadlines(completion_s=3, stall_s=1000),
                     MigrationPolicy(max_downtime_ms=10_000), clock=lambda: float(clock()), interval=0.01)
    try:
        with mon:
            assert aborted.wait(10), events
    finally:
        release.set()
    assert mon.aborted and "did not complete within 3" in mon.aborted
    assert not [e for e in events if e["event"] == "max-downtime"]  # still waiting when the deadline hit
