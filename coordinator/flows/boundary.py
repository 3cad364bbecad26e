"""The flows' boundary: no libvirt error leaves a flow raw (the CLI prints no traceback)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from coordinator.core.errors import HostError
from coordinator.virt.errors import LibvirtError, error_summary


@contextlib.contextmanager
def libvirt_errors(what: str = "") -> Iterator[None]:
    """A libvirt error nobody handled becomes one clean line (``HostError``, exit 1). Every stage
    that changes something maps its own failures first (MigrationFailed, a rollback, an
    unverified result), so what reaches this boundary happened where nothing was changed."""
    try:
        yield
    except LibvirtError as e:
        raise HostError(f"{what}{error_summary(e)}", hint="nothing was changed") from None
