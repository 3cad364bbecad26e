"""Stand-ins for what ``steps.lease.LeaseKeeper`` talks to: a guest whose metadata is kept in memory, and a
journal that keeps the names of the events recorded (tests of taking, extending and releasing a lease)."""
from __future__ import annotations

from coordinator.core.lease_rules import NAMESPACE


class MetadataGuest:
    """A guest seam stand-in holding one metadata element (migcoord's lease namespace only); counts writes."""
    name = "vm1"
    uuid = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"

    def __init__(self, element: str | None = None) -> None:
        self.element = element
        self.writes = 0

    def metadata(self, namespace: str) -> str | None:
        assert namespace == NAMESPACE
        return self.element

    def set_metadata(self, namespace: str, prefix: str, element: str | None) -> None:
        assert namespace == NAMESPACE
        self.element = element
        self.writes += 1


class RecordingJournal:
    """A journal stand-in of run ``run-a``: the names of the events recorded, in order."""
    run_id = "run-a"

    def __init__(self) -> None:
        self.events: list[str] = []

    def record(self, event: str, **_: object) -> None:
        self.events.append(event)
