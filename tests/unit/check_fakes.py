"""Real ``CheckContext``s over stand-ins of the host and guest seams, for tests of the check runner and of
single checks: the runner is exercised exactly as the flows use it (no namespace standing in for a context)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checks.context import CheckContext, Memo, Target
from coordinator.core.domain.document import read_document
from coordinator.steps.parameters import MigrateOptions

SRC, DST = "qemu+tls://hv1/system", "qemu+tls://hv2/system"


class StubHost:
    """A host seam stand-in: its URI, and whatever calls a test gives it (``StubHost(uri, free_memory=f)``)."""

    def __init__(self, uri: str, **calls: Any) -> None:
        self.uri = uri
        for name, fn in calls.items():
            setattr(self, name, fn)

    def close(self) -> None:
        pass


class StubGuest:
    """A guest seam stand-in: a name (the runner's tests never ask a guest anything)."""

    def __init__(self, name: str) -> None:
        self.name = name


def target(name: str, devices: str = "") -> Target:
    """A domain ``name`` whose definition has these ``<devices>`` (XML text; none by default)."""
    return Target(ident=name, guest=StubGuest(name),  # type: ignore[arg-type]
                  doc=read_document([f"<domain><name>{name}</name><devices>{devices}</devices></domain>"]))


def context(names: Iterable[str | Target] = (), *, src: Any = None, dst: Any = None, src_uri: str = SRC,
            dst_uri: str = DST, options: MigrateOptions | None = None, memo: Memo | None = None,
            connect_errors: dict[str, str] | None = None) -> CheckContext:
    """A context checking the domains ``names``; ``src``/``dst``: the hosts (None: unreachable)."""
    targets = tuple(n if isinstance(n, Target) else target(n) for n in names)
    return CheckContext(src_uri, dst_uri, src, dst, targets=targets,
                        options=options or MigrateOptions(), memo=memo, connect_errors=connect_errors or {})


def reachable() -> dict[str, StubHost]:
    """Both hosts reachable (for checks that need them but ask them nothing)."""
    return {"src": StubHost(SRC), "dst": StubHost(DST)}
