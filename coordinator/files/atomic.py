"""Files the tool writes (house rule 16): atomically, and never through a symlink it did not make.

``write_atomic``: ``mkstemp`` in the target's directory (``O_EXCL``, a fresh random name, so no
one can have planted it), write, ``fsync``, ``rename`` over the target, ``fsync`` the directory.
A reader sees the old file or the new one, never half of one; a symlink at the target is refused
(it is not ours), never written through or replaced. ``check_target`` refuses the same things before
any work is done. ``open_append`` is the journal's open: ``O_APPEND`` so concurrent runs interleave
whole lines, ``O_NOFOLLOW`` so a planted symlink is refused.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from coordinator.core.errors import BadInput


def _show(path: Path | str) -> str:
    text = str(path)
    return text if len(text) <= 160 else f"{text[:80]}...({len(text)} characters)"


def check_target(path: Path | str, what: str = "output file") -> None:
    """Before any work: the directory exists and the target, if present, is a regular file (not a
    symlink, not a directory). BadInput otherwise."""
    p = Path(path)
    try:
        parent = os.stat(p.parent)
    except OSError as e:
        raise BadInput(f"{what} {_show(p)}: directory {_show(p.parent)} "
                       f"{'does not exist' if e.errno == errno.ENOENT else f'cannot be used: {e.strerror}'}",
                       hint="create it first") from None
    if not stat.S_ISDIR(parent.st_mode):
        raise BadInput(f"{what} {_show(p)}: {_show(p.parent)} is not a directory")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    except OSError as e:
        raise BadInput(f"{what} {_show(p)} cannot be used: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise BadInput(f"{what} {_show(p)} is a symbolic link; refusing to write through or replace it",
                       hint="give the real path")
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{what} {_show(p)} is a directory")


def write_atomic(path: Path | str, data: bytes, mode: int = 0o600, what: str = "output file") -> None:
    """Replace ``path`` with ``data`` atomically (see the module doc). Raises BadInput for a
    symlink or directory target, OSError for I/O failures (disk full, directory gone)."""
    import tempfile  # NOTE: here, not at start-up (it pulls shutil, bz2, lzma, random in)

    p = Path(path)
    check_target(p, what)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name[:100]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # NOTE: durability of the rename itself; best effort
        dfd = os.open(p.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def open_append(path: Path | str, what: str = "journal") -> int:
    """A descriptor for appending whole lines (owner-only when created). BadInput when the path
    is a symlink or cannot be opened; the caller closes it."""
    try:  # NOTE: O_NONBLOCK: a FIFO planted at the path must not hang the run (ENXIO without a reader)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
                     | os.O_NONBLOCK, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadInput(f"{what} {_show(path)} is a symbolic link; refusing to write through it",
                           hint="give the real path") from None
        raise BadInput(f"{what} {_show(path)} cannot be opened for writing: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):  # a file, or a device such as /dev/null
        os.close(fd)
        raise BadInput(f"{what} {_show(path)} is not a regular file")
    return fd
