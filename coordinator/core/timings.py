"""Where the time of one migration goes (issue #15): a phase recorder on an injected clock, the
``Timings`` it produces, and the parsing of a process's start time. Pure: the clock and the
``/proc`` text are handed in (the flow hands ``Runtime.clock``, the command line the files).

Phases are exclusive: time spent in a phase entered while another is open counts for the inner
one only, so the phases plus ``other`` (the flow's own work between them: look-ups, the lock,
the lease, events) add up to ``total``. ``qemu_elapsed`` is not a phase but a second opinion on
``migration``: libvirt's ``time_elapsed`` of the completed migration job (the last attempt).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# In the order they happen; "startup" is the command line's (process start → the flow starts).
PHASES = ("startup", "connect", "plan", "checks", "provision", "migration", "verify")
KEYS = (*PHASES, "qemu_elapsed", "other", "total")  # as_dict's keys (read by scripts/bench)


@dataclass(frozen=True)
class Timings:
    """Seconds per phase (a phase never entered is absent: null in ``as_dict``), the flow's own
    wall time, and what the command line adds (``startup``)."""

    phases: Mapping[str, float] = field(default_factory=dict)
    flow_s: float = 0.0
    qemu_elapsed_s: float | None = None

    @property
    def startup_s(self) -> float | None:
        return self.phases.get("startup")

    @property
    def total_s(self) -> float:
        return self.flow_s + (self.startup_s or 0.0)

    @property
    def other_s(self) -> float:
        """The flow's time outside every phase (never negative: a clock is monotonic)."""
        return max(0.0, self.flow_s - sum(v for k, v in self.phases.items() if k != "startup"))

    def with_startup(self, seconds: float | None) -> Timings:
        """The same, with the process's start-up in front (None: unknown, left out)."""
        if seconds is None:
            return self
        return replace(self, phases={**self.phases, "startup": max(0.0, seconds)})

    def as_dict(self, digits: int = 3) -> dict[str, float | None]:
        """Every key of ``KEYS``: seconds rounded to ``digits``, or None when unknown / not run."""
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, digits)
        out: dict[str, float | None] = {k: r(self.phases.get(k)) for k in PHASES}
        out.update(qemu_elapsed=r(self.qemu_elapsed_s), other=r(self.other_s), total=r(self.total_s))
        return out


NO_TIMINGS: dict[str, Any] = dict.fromkeys(KEYS)  # what a result without timings shows


class PhaseRecorder:
    """Records exclusive time per phase on ``clock`` (e.g. ``time.monotonic``), from its creation.

    ``with rec.phase("plan"): ...``; phases may nest (the inner one gets the time) and repeat
    (the times add up). Not thread-safe: the flow's own thread records, workers do not."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self._spent: dict[str, float] = {}
        self._open: list[str] = []
        self._mark = self.started
        self.qemu_elapsed_s: float | None = None

    def _charge(self, now: float) -> None:
        if self._open:
            top = self._open[-1]
            self._spent[top] = self._spent.get(top, 0.0) + (now - self._mark)
        self._mark = now

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in PHASES or name == "startup":
            raise ValueError(f"unknown phase {name!r}")
        self._charge(self.clock())
        self._open.append(name)
        self._spent.setdefault(name, 0.0)
        try:
            yield
        finally:
            self._charge(self.clock())
            self._open.pop()

    def qemu_elapsed(self, ms: int | float | None) -> None:
        """libvirt's ``time_elapsed`` (milliseconds) of the completed migration job."""
        self.qemu_elapsed_s = None if ms is None else ms / 1000.0

    def finish(self) -> Timings:
        """What was recorded so far (phases still open are counted up to now)."""
        now = self.clock()
        spent = dict(self._spent)
        if self._open:
            top = self._open[-1]
            spent[top] = spent.get(top, 0.0) + (now - self._mark)
        return Timings(phases=spent, flow_s=now - self.started, qemu_elapsed_s=self.qemu_elapsed_s)


def process_age(stat: str, boottime_s: float, clk_tck: int) -> float:
    """Seconds since a process started, from its ``/proc/PID/stat`` text (field 22, ``starttime``:
    clock ticks after boot) and the time since boot now (``CLOCK_BOOTTIME``, the same clock).
    Resolution: one clock tick (1/``clk_tck``, 10 ms on Linux); the kernel truncates the start to
    a tick, so the age reads up to one tick long. The start is the fork, a moment before the exec."""
    rest = stat[stat.rindex(")") + 2:].split()  # after "(comm) ": comm may hold spaces and parens
    start_ticks = int(rest[22 - 3])  # rest[0] is field 3 (state)
    return max(0.0, boottime_s - start_ticks / clk_tck)
