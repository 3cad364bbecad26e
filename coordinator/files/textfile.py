"""Write a whole file atomically (house rule 16): a temporary file in the target directory, fsync,
rename over the target, fsync the directory. Readers (node_exporter, a report consumer) see the
old file or the new one, never half of one. A target that is a symlink is refused: the rename
would replace a link someone else made (house rule 14), and we never write through one.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from coordinator.core.errors import BadInput


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``; the directory must exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise BadInput(f"{path} is a symlink; refusing to replace it", hint="point the option at the real file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{path} exists and is not a regular file")
    directory = path.parent
    if not directory.is_dir():
        raise BadInput(f"directory {directory} does not exist", hint=f"create it: mkdir -p {directory}")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
