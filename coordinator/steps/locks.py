"""Exclusive, crash-safe locks: one migcoord run per domain, one evacuation per source host.

``flock`` on a file under the lock directory: the kernel releases it when the holder dies,
so a crashed run never leaves a stale lock behind (no PID files to clean up).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from collections.abc import Iterator

from coordinator.core import defaults
from coordinator.core.errors import BadInput, Busy

DEFAULT_LOCK_DIR = Path(os.environ.get(defaults.LOCK_DIR_ENV, defaults.LOCK_DIR))


@contextlib.contextmanager
def exclusive(path: Path, busy: str, hint: str) -> Iterator[None]:
    """Hold ``path`` exclusively for the block, or raise ``Busy(busy, hint=hint)`` at once."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # NOTE: O_NOFOLLOW: a symlink planted in the lock directory must not make us create its target
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise BadInput(f"lock file {path} cannot be opened: {e.strerror}",
                       hint="it must be a regular file in an owner-only directory") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(busy, hint=hint, lock=str(path)) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def domain_lock(lock_dir: Path, uuid: str, name: str) -> contextlib.AbstractContextManager[None]:
    return exclusive(lock_dir / f"{uuid}.lock", f"another migcoord run is already working on domain {name} "
                     f"({uuid})", "wait for it to finish")


def host_lock(lock_dir: Path, host_uuid: str, uri: str) -> contextlib.AbstractContextManager[None]:
    path = lock_dir / f"host-{host_uuid}.lock"
    return exclusive(path, f"another migcoord evacuation of {uri} is running (lock {path})",
                     "let it finish; a re-run afterwards picks up what is left")
