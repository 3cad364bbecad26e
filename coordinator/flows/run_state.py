"""What the modules of one migration run share: the signal shield and ``RunState``.

``flows.migrate`` orders the run; ``flows.attempt`` (one interruptible migrateToURI3) and
``flows.adoption`` (a dead run's job) are handed the same ``RunState`` explicitly, so the host a retry
reconnected, the attempt count and the cleanup budget have one home.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from coordinator.core.errors import Unsettled
from coordinator.core.params import TimeoutPolicy
from coordinator.steps.parameters import MigrateOptions, Runtime
from coordinator.virt.guest import CallTimedOut, Guest, call_within
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")

T = TypeVar("T")


class SignalShield:
    """A second (third, ...) SIGINT/SIGTERM must not cut the cleanup short (issue 21). From the first
    interrupt (``engage``) until the run is over, this run's handlers for both signals only count; the
    waits of the cleanup (``tick``, every 0.1 s) answer each signal with "still cleaning up", and it goes on — it
    ends by itself within its bounds (core.params), so a further signal changes nothing. ``__exit__``
    puts the caller's handlers back. It spans the whole run (provisioning, attempts, closing the
    connections), not one attempt. NOTE: only in the main thread (where Python delivers signals and
    may set handlers); a run in another thread never sees a KeyboardInterrupt. The handler does no I/O:
    a write to stderr from inside a signal handler can hit a write in progress."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.engaged = False
        self.count = self.noted = 0
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> SignalShield:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tick()
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    def engage(self) -> None:
        if self.engaged:
            return
        self.engaged = True
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1

    def tick(self) -> None:
        while self.noted < self.count:  # one answer per signal
            self.noted += 1
            log.warning("still cleaning up, please wait (a further signal changes nothing: the abort and the "
                        "rollback finish by themselves within %.0f s)", self.bound_s)


@dataclass
class RunState:
    """One locked migration of one domain, as its steps share it. ``src`` is replaced when a retry
    reconnects; ``unsettled`` means a bound was hit with a job that may still run (the lease stays)."""

    guest: Guest
    src: Host
    dst: Host
    options: MigrateOptions
    rt: Runtime
    shield: SignalShield
    attempts: int = 0
    unsettled: bool = False
    cleanup_until: float | None = None  # time.monotonic() when the shared cleanup budget ends

    @property
    def bounds(self) -> TimeoutPolicy:
        return self.options.timeouts

    def bounded(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` waited for at most the bound on one call, and within the cleanup budget once
        the cleanup began (``core.params``); ``CallTimedOut`` past it."""
        bound = self.bounds.call_s
        if self.cleanup_until is not None:
            bound = min(bound, max(0.05, self.cleanup_until - time.monotonic()))
        return call_within(bound, what, fn, *args, tick=self.shield.tick)

    def start_cleanup(self) -> None:
        """The cleanup budget (``cleanup_s``) starts once, at the first failure or signal."""
        if self.cleanup_until is None:
            self.cleanup_until = time.monotonic() + self.bounds.cleanup_s


def location_unknown(st: RunState, t: CallTimedOut, after: str, error: str, **journal: Any) -> Unsettled:
    """Where the VM runs could not be asked within the bound: nothing more is touched (secrets and
    lease stay) and the operator is told to look on both hosts first."""
    st.unsettled = True
    name, src, dst = st.guest.name, st.src.uri, st.dst.uri
    st.rt.journal.record("migration-unsettled", uuid=st.guest.uuid, error=error, where="not known", detail=str(t),
                         **journal)
    return Unsettled(f"the VM's location is not known: {t} after {after}; look with `virsh -c {src} domstate "
                     f"{name}` and `virsh -c {dst} domstate {name}` before anything else", where="unknown",
                     attempts=st.attempts)
