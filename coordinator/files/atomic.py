"""Files the tool writes (house rule 16): atomically, and never through a symlink it did not make.

Every write happens relative to a descriptor of the target's directory (``open_dir``): the path is
walked one component at a time with ``O_NOFOLLOW``, so the directory itself must not be a symlink,
and a symlink earlier in the path is followed only when it is owned by root or by us (``/var/run``
→ ``/run``); one owned by anyone else is refused. What is checked is then what is written into: a
directory swapped for a symlink after the check changes nothing.

``write_atomic``: a fresh random name created ``O_EXCL | O_NOFOLLOW`` in that directory (so no one
can have planted it), write, ``fsync``, ``rename`` over the target, ``fsync`` the directory. A
reader sees the old file or the new one, never half of one; a symlink at the target is refused (it
is not ours), never written through or replaced. ``check_target`` refuses the same things before any
work is done. ``open_append`` is the journal's open: ``O_APPEND`` so concurrent runs interleave whole
lines, ``O_NOFOLLOW`` so a planted symlink is refused, and a file someone else owns or others may
write is refused (it is not ours to add to).
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from coordinator.core.errors import BadInput
from coordinator.files.opening import shown

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _trusted(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def open_dir(directory: Path | str, what: str, target: Path | str) -> int:
    """A descriptor of ``directory`` for writing ``target`` into it (see the module doc); the caller
    closes it. BadInput naming ``what`` when a component is missing, not a directory, a symlink at
    the end, or an earlier symlink owned by someone other than root or us."""
    d = Path(directory)
    names = [n for n in (d.parts[1:] if d.is_absolute() else d.parts) if n not in ("", ".")]
    fd = os.open("/" if d.is_absolute() else ".", _DIR_FLAGS)
    walked = Path("/") if d.is_absolute() else Path()
    try:
        for i, name in enumerate(names):
            walked = walked / name
            try:
                nfd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                nfd = _through_link(fd, name, e, i == len(names) - 1, walked, what, target)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _through_link(fd: int, name: str, e: OSError, last: bool, walked: Path, what: str,
                  target: Path | str) -> int:
    """The directory a symlink component leads to, when that link may be trusted; else BadInput."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode) and e.errno in (errno.ELOOP, errno.ENOTDIR):
        if last:
            raise BadInput(f"{what} {shown(target)}: directory {shown(walked)} is a symbolic link; refusing to "
                           "write through it", hint="give the real directory") from None
        if not _trusted(st):
            raise BadInput(f"{what} {shown(target)}: {shown(walked)} is a symbolic link owned by uid {st.st_uid}, "
                           "not by root or you; refusing to follow it", hint="give the real directory") from None
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as e2:
            e = e2
    if e.errno == errno.ENOENT:
        raise BadInput(f"{what} {shown(target)}: directory {shown(walked)} does not exist",
                       hint="create it first") from None
    if e.errno == errno.ENOTDIR:
        raise BadInput(f"{what} {shown(target)}: {shown(walked)} is not a directory") from None
    raise BadInput(f"{what} {shown(target)}: directory {shown(walked)} cannot be used: {e.strerror}") from None


def _check_name(dfd: int, name: str, path: Path, what: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as e:
        raise BadInput(f"{what} {shown(path)} cannot be used: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise BadInput(f"{what} {shown(path)} is a symbolic link; refusing to write through or replace it",
                       hint="give the real path")
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{what} {shown(path)} is a directory")


def _split(path: Path | str, what: str) -> tuple[Path, str]:
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise BadInput(f"{what} {shown(p)} is a directory", hint="name a file")
    return p.parent, p.name


def check_target(path: Path | str, what: str = "output file") -> None:
    """Before any work: the directory exists (reached as ``open_dir`` does) and the target, if
    present, is a regular file (not a symlink, not a directory). BadInput otherwise."""
    parent, name = _split(path, what)
    dfd = open_dir(parent, what, path)
    try:
        _check_name(dfd, name, Path(path), what)
    finally:
        os.close(dfd)


def write_atomic(path: Path | str, data: bytes, mode: int = 0o600, what: str = "output file") -> None:
    """Replace ``path`` with ``data`` atomically (see the module doc). Raises BadInput for a
    symlink or directory target or directory, OSError for I/O failures (disk full, directory gone)."""
    parent, name = _split(path, what)
    dfd = open_dir(parent, what, path)
    try:
        _check_name(dfd, name, Path(path), what)
        tmp = f".{name[:100]}.{os.urandom(8).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        with contextlib.suppress(OSError):  # NOTE: durability of the rename itself; best effort
            os.fsync(dfd)
    finally:
        os.close(dfd)


def open_append(path: Path | str, what: str = "journal") -> int:
    """A descriptor for appending whole lines (owner-only when created). BadInput when the path
    or its directory is a symlink (``open_dir``), it cannot be opened, or it is a file that is not
    ours: owned by someone other than us or root, or writable by group or others. The caller closes it."""
    parent, name = _split(path, what)
    dfd = open_dir(parent, what, path)
    try:  # NOTE: O_NONBLOCK: a FIFO planted at the path must not hang the run (ENXIO without a reader)
        fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
                     | os.O_NONBLOCK, 0o600, dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadInput(f"{what} {shown(path)} is a symbolic link; refusing to write through it",
                           hint="give the real path") from None
        raise BadInput(f"{what} {shown(path)} cannot be opened for writing: {e.strerror}") from None
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    problem = ""
    if stat.S_ISREG(st.st_mode):
        if not _trusted(st):
            problem = f"is owned by uid {st.st_uid}, not by you or root; refusing to add to it"
        elif st.st_mode & 0o022:
            problem = (f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); refusing to add "
                       f"to it (fix: chmod go-w {shown(path)})")
    elif not stat.S_ISCHR(st.st_mode):  # a file, or a device such as /dev/null
        problem = "is not a regular file"
    if problem:
        os.close(fd)
        raise BadInput(f"{what} {shown(path)} {problem}")
    return fd
