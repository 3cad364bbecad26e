"""The settings file: read only when nobody but its owner (root or us) can change it.

It names helper commands that are run and key directories that are trusted, so a file others can
write would let them choose what ``migcoord`` runs as root. It is opened once with
``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC`` and checked on that descriptor (``fstat``), as key
files are: a symlink at the path is refused (give the real path), a FIFO or device never blocks us,
and a file over ``MAX_BYTES`` is refused, never cut. Parsing is ``tomllib`` (nesting too deep for it
is one clear error); validation is ``core.config``'s.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from coordinator.core.errors import BadInput
from coordinator.files.opening import READ_FLAGS, open_error

MAX_BYTES = 1 << 20


def _read(path: Path) -> bytes:
    """The file's bytes, checked on its descriptor."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as e:
        raise open_error("settings file", path, e, missing_hint="check --config or MIGCOORD_CONFIG",
                         link_hint="give the file itself: --config $(readlink -f PATH)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{path}: not a regular file", hint="give a settings file, not a FIFO, device or socket")
        if st.st_mode & 0o022:
            raise BadInput(f"{path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})",
                           hint=f"it names commands migcoord runs: chmod go-w {path}")
        if st.st_uid not in (0, os.geteuid()):
            raise BadInput(f"{path}: owned by uid {st.st_uid}, not by root or you")
        if st.st_size > MAX_BYTES:
            raise _too_large(path)
        chunks, size = [], 0
        while size <= MAX_BYTES:  # NOTE: the size may change under us; what is read is what counts
            try:
                chunk = os.read(fd, MAX_BYTES + 1 - size)
            except OSError as e:
                raise BadInput(f"{path}: cannot be read ({e.strerror})") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise _too_large(path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(path: Path) -> BadInput:
    return BadInput(f"{path}: larger than {MAX_BYTES} bytes (1 MiB); refusing it rather than reading part of it",
                    hint="a settings file is a few KiB: check it is the right file")


def load_config_file(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``, or ``BadInput`` naming the file."""
    import tomllib  # NOTE: here: most runs have no settings file, and start-up time counts (issue #15)

    data = _read(Path(path))
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise BadInput(f"{path}: not a usable settings file: arrays or tables nested too deeply") from None
