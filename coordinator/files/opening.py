"""How a file the operator names is opened, and the one line each way it can fail to open.

Key files and the settings file follow the same rules: opened once with ``O_NOFOLLOW | O_NONBLOCK |
O_NOCTTY | O_CLOEXEC`` (no symlink followed at the last component, a FIFO or device never blocks),
then checked on the descriptor. Their open errors read alike, so they are worded here, once.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from coordinator.core.errors import BadInput

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def shown(path: Path | str) -> str:
    """The path as an error names it: whole, unless it is absurdly long."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:80]}...({len(text)} characters)"


def is_link(path: Path | str, dir_fd: int | None = None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_error(what: str, path: Path | str, e: OSError, *, dir_fd: int | None = None,
               missing_hint: str = "check the path", link_hint: str = "give the file itself") -> BadInput:
    """One line per cause: the operator's path is named, never followed further."""
    where = shown(path)
    if e.errno == errno.ENOENT:
        return BadInput(f"{what} {where} does not exist", hint=missing_hint)
    if e.errno in (errno.EACCES, errno.EPERM):
        return BadInput(f"{what} {where} cannot be read ({e.strerror})", hint="run as its owner or root")
    if e.errno == errno.ELOOP:
        if is_link(path, dir_fd):
            return BadInput(f"{what} {where} is a symbolic link; refusing to follow it", hint=link_hint)
        return BadInput(f"{what} {where}: too many levels of symbolic links")
    if e.errno == errno.ENAMETOOLONG:
        return BadInput(f"{what} path is too long ({len(str(path))} characters)")
    if e.errno == errno.ENOTDIR:
        return BadInput(f"{what} {where}: a component of the path is not a directory")
    if e.errno == errno.EISDIR:
        return BadInput(f"{what} {where} is not a regular file (a directory)")
    return BadInput(f"{what} {where} cannot be opened: {e.strerror or e}")
