"""Exclusive, crash-safe locks: one migcoord run per domain, one evacuation per source host.

``flock`` on a file under the lock directory: the kernel releases it when the holder dies,
so a crashed run never leaves a stale lock behind (no PID files to clean up).

The lock directory and its files are ours or refused: the directory is reached without following a
symlink at its end (``files.atomic.open_dir``) and must be owned by us or root and not writable by
group or others; a lock file is opened relative to it with ``O_NOFOLLOW`` and must be a regular file
owned by us or root that others cannot write (a lock someone else planted could be held by them).
A dry run (``create=False``) creates nothing: it looks at an existing lock without taking it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from coordinator.core.errors import BadInput, Busy
from coordinator.files.atomic import open_dir

_HINT = "it must be a regular file, owned by you or root, in an owner-only directory"


def _not_ours(st: os.stat_result) -> str:
    if st.st_uid not in (0, os.geteuid()):
        return f"owned by uid {st.st_uid}, not by you or root"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def _lock_dir(directory: Path, path: Path, create: bool) -> int | None:
    """A descriptor of the lock directory (None: it does not exist and ``create`` is false)."""
    if create:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    elif not os.path.lexists(directory):
        return None
    dfd = open_dir(directory, "lock file", path)
    why = _not_ours(os.fstat(dfd))
    if why:
        os.close(dfd)
        raise BadInput(f"lock directory {directory} is {why}; refusing to lock in it",
                       hint=f"use an owner-only directory: chmod 700 {directory}")
    return dfd


@contextlib.contextmanager
def exclusive(path: Path, busy: str, hint: str, create: bool = True) -> Iterator[None]:
    """Hold ``path`` exclusively for the block, or raise ``Busy(busy, hint=hint)`` at once. With
    ``create`` false (a dry run) nothing is created and nothing is held: an existing lock someone
    holds is still Busy."""
    dfd = _lock_dir(path.parent, path, create)
    if dfd is None:
        yield  # no lock directory: nobody holds a lock in it
        return
    try:  # NOTE: O_NOFOLLOW: a symlink planted in the lock directory must not make us create its target
        flags = (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY
        fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, 0o600,
                     dir_fd=dfd)
    except OSError as e:
        if not create and e.errno == errno.ENOENT:
            fd = -1
        else:
            raise BadInput(f"lock file {path} cannot be opened: {e.strerror}", hint=_HINT) from None
    finally:
        os.close(dfd)
    if fd < 0:
        yield  # never locked by anyone
        return
    try:
        st = os.fstat(fd)
        why = "not a regular file" if not stat.S_ISREG(st.st_mode) else _not_ours(st)
        if why:
            raise BadInput(f"lock file {path} is {why}; refusing to use it", hint=_HINT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(busy, hint=hint, lock=str(path)) from None
        if not create:
            fcntl.flock(fd, fcntl.LOCK_UN)  # a dry run only looks: it holds nothing while it plans
        yield
    finally:
        os.close(fd)  # releases the lock


def domain_lock(lock_dir: Path, uuid: str, name: str, create: bool = True) -> contextlib.AbstractContextManager[None]:
    return exclusive(lock_dir / f"{uuid}.lock", f"another migcoord run is already working on domain {name} "
                     f"({uuid})", "wait for it to finish", create=create)


def host_lock(lock_dir: Path, host_uuid: str, uri: str) -> contextlib.AbstractContextManager[None]:
    path = lock_dir / f"host-{host_uuid}.lock"
    return exclusive(path, f"another migcoord evacuation of {uri} is running (lock {path})",
                     "let it finish; a re-run afterwards picks up what is left")
