"""While secret values are held in memory, this process writes no core dump.

Held values (the keyring's cache, the source values an evacuation plan shares) could otherwise land
in a core file. ``acquire`` — called when the first value is kept — sets the soft ``RLIMIT_CORE`` to
0 and ``prctl(PR_SET_DUMPABLE, 0)`` (which also keeps other processes of the same user from
ptrace-attaching or reading /proc/PID/mem); ``release`` — when the last holder dropped its values —
restores both. Reference-counted and thread-safe; a no-op where the calls do not exist.
"""
from __future__ import annotations

import logging
import resource
import threading
from typing import Any

log = logging.getLogger("migcoord")

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, int] | None = None  # (soft RLIMIT_CORE, dumpable) before the first acquire


def _prctl() -> Any | None:
    # NOTE: ctypes is imported here, when a value is first held, not at start-up; CDLL(None) is this
    # process's own symbol table (libc included) — ctypes.util.find_library would run ldconfig.
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def dumpable() -> int | None:
    """prctl(PR_GET_DUMPABLE): 0 when core dumps (and same-user ptrace) are off; None if unknown."""
    prctl = _prctl()
    return None if prctl is None else int(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def acquire() -> None:
    global _holders, _saved
    with _lock:
        _holders += 1
        if _holders > 1:
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        before = dumpable()
        _saved = (soft, 1 if before is None else before)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        prctl = _prctl()
        if prctl is None or prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.info("prctl(PR_SET_DUMPABLE, 0) unavailable; core dumps are off by RLIMIT_CORE only")


def release() -> None:
    global _holders, _saved
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders or _saved is None:
            return
        soft, was_dumpable = _saved
        _saved = None
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
        prctl = _prctl()
        if prctl is not None and was_dumpable:
            prctl(PR_SET_DUMPABLE, was_dumpable, 0, 0, 0)
