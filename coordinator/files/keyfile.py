"""Key files (secret values, SSH private keys): owner-only regular files, or we refuse them.

A key file is opened once with ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC`` and every rule is
checked on that descriptor (``fstat``): what we check is what we read — no ``stat()``-then-``open()``
race, no symlink followed at the last path component, and a FIFO or device never blocks us.
A ``--secret-dir`` directory is opened the same way (``O_DIRECTORY``) and its files are opened
relative to that descriptor, by a name that has already been validated as a UUID.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from coordinator.core.errors import BadInput
from coordinator.files.opening import READ_FLAGS, open_error, shown



def _check_owner(what: str, path: Path | str, st: os.stat_result) -> None:
    if st.st_mode & 0o077:
        raise BadInput(f"{what} {shown(path)} has loose permissions {stat.S_IMODE(st.st_mode):04o}",
                       hint=f"make it owner-only: chmod {'700' if stat.S_ISDIR(st.st_mode) else '600'} "
                            f"{shown(path)}")
    if st.st_uid not in (os.geteuid(), 0):
        raise BadInput(f"{what} {shown(path)} is owned by uid {st.st_uid}, not by you or root")


def open_key_file(path: Path | str, *, dir_fd: int | None = None, what: str = "key file") -> int:
    """A descriptor of ``path`` once it is known to be an owner-only regular file owned by us or
    root (checked on the descriptor). The caller closes it. BadInput otherwise."""
    try:
        fd = os.open(path, READ_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        raise open_error(what, path, e, dir_fd=dir_fd,
                         link_hint="symbolic links are not followed for key material") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{what} {shown(path)} is not a regular file")
        _check_owner(what, path, st)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_key_file(path: Path) -> None:
    """Refuse anything but a regular file readable by its owner only (fail fast, before anything
    changes; the file is checked again, on its descriptor, when it is read)."""
    os.close(open_key_file(path))


def read_key_file(path: Path | str, limit: int, *, dir_fd: int | None = None,
                  what: str = "key file") -> bytearray:
    """The exact bytes of a key file (at most ``limit``; more is refused, never truncated)."""
    fd = open_key_file(path, dir_fd=dir_fd, what=what)
    buf = bytearray()
    try:
        while len(buf) <= limit:
            chunk = os.read(fd, limit + 1 - len(buf))
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(fd)
    if len(buf) > limit:
        buf[:] = bytes(len(buf))
        raise BadInput(f"{what} {shown(path)} is larger than {limit} bytes")
    return buf


@contextlib.contextmanager
def key_dir(path: Path | str) -> Iterator[int]:
    """A descriptor of a key directory: a real directory (not a symlink), owner-only, owned by us
    or root. Open its files with ``read_key_file(name, dir_fd=fd)``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            raise BadInput(f"secret directory {shown(path)} is not a directory") from None
        raise open_error("secret directory", path, e) from None
    try:
        _check_owner("secret directory", path, os.fstat(fd))
        yield fd
    finally:
        os.close(fd)
