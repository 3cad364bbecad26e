"""Key files (secret values, SSH private keys): owner-only regular files, or we refuse them."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from coordinator.core.errors import BadInput


def check_key_file(path: Path) -> None:
    """Refuse anything but a regular file readable by its owner only."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BadInput(f"key file {path} does not exist", hint="check the path") from None
    except PermissionError:
        raise BadInput(f"key file {path} cannot be read", hint="run as its owner or root") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise BadInput(f"key file {path} has loose permissions {stat.S_IMODE(st.st_mode):04o}",
                       hint=f"make it owner-only: chmod 600 {path}")
    if st.st_uid not in (os.geteuid(), 0):
        raise BadInput(f"key file {path} is owned by uid {st.st_uid}, not by you or root")
