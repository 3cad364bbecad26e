"""The settings file: read only when nobody but its owner (root or us) can change it.

It names helper commands that are run and key directories that are trusted, so a file others can
write would let them choose what ``migcoord`` runs as root. Parsing is ``tomllib``; validation is
``core.config``'s.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from coordinator.core.errors import BadInput


def load_config_file(path: Path) -> dict[str, Any]:
    """The TOML document at ``path`` (after following symlinks), or ``BadInput`` naming the file."""
    import tomllib  # NOTE: here: most runs have no settings file, and start-up time counts (issue #15)

    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadInput(f"{path}: not a regular file")
            if st.st_mode & 0o022:
                raise BadInput(f"{path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})",
                               hint=f"it names commands migcoord runs: chmod go-w {path}")
            if st.st_uid not in (0, os.geteuid()):
                raise BadInput(f"{path}: owned by uid {st.st_uid}, not by root or you")
            data = f.read(1 << 20)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file", hint="check --config or MIGCOORD_CONFIG") from None
    except (PermissionError, IsADirectoryError) as e:
        raise BadInput(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: not valid TOML: {e}") from None
