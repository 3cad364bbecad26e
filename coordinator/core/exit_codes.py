"""Every exit code ``migcoord`` can end with, one definition each (house rule 20).

Pure and standard-library only, so every layer can use it: the command line (``cli``) returns these,
``flows/evacuate`` and ``cli/run_metrics`` compare an error's ``exit_code`` with them, and ``migcoord
--help`` (``cli/main.EXIT_CODES``) is generated from the docstrings below. The exception tree
(``core/errors``) says which failure carries which code; README's table is checked against both
(tests/unit/test_docs.py).

NOTE: it lives in ``core``, not ``cli``: ``flows`` sit below the command line and may not import it
(tests/unit/test_layers.py).
"""
from __future__ import annotations

import enum
from collections.abc import Mapping

_INTERRUPTED = ("interrupted by SIGINT (Ctrl-C) / SIGTERM: the running migration was aborted, what\n"
                "this run created was removed, the VM runs on exactly one host")


class ExitCode(enum.IntEnum):
    """An exit code. Each member's docstring is its ``--help`` line (continuation lines are
    indented there by five spaces); members that share a docstring share the line."""

    def __new__(cls, value: int, doc: str = "") -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.__doc__ = doc
        return member

    OK = 0, "success (or already on the destination)"
    BLOCKED = 1, "a check blocked the migration; nothing was changed"
    USAGE = 2, "usage error or bad input (malformed XML, bad URI, unreadable key file)"
    FAILED = 3, "migration failed; the VM is still on the source"
    PARTIAL = 4, "partial: some domains moved, some did not (evacuation)"
    UNVERIFIED = 5, ("migrated, but verification is incomplete (the VM runs on the destination; see the "
                     "warnings)")
    UNKNOWN = 6, ("UNKNOWN: nothing blocks, but a fact that decides success is unknown; nothing was changed\n"
                  "(the hint says how to make it known; --accept-unknown goes on anyway)")
    UNSETTLED = 7, ("unsettled: a libvirt call did not return within its bound (a job may still run); the line "
                    "says\nwhere the VM is believed to be and what to do (migcoord abort, virsh); the locks "
                    "were released")
    BUSY = 75, "another migcoord run holds the lock (EX_TEMPFAIL: try again later)"
    SIGINT = 130, _INTERRUPTED
    SIGTERM = 143, _INTERRUPTED


SIGNAL_BASE = 128
"""A run ended by a signal exits 128 + the signal's number (the shell's convention): SIGINT → 130."""


def for_signal(signum: int) -> int:
    """The exit code of a run interrupted by ``signum`` (``ExitCode.SIGINT`` / ``SIGTERM`` for those two)."""
    return SIGNAL_BASE + signum


def help_text(meanings: Mapping[ExitCode, str] | None = None) -> str:
    """The ``exit codes:`` epilog of ``migcoord --help``, one entry per docstring; with
    ``meanings``, only those codes, each with what it means for that command (``check``, ``abort``)."""
    lines = ["exit codes:"]
    members = list(ExitCode) if meanings is None else sorted(meanings)
    doc = {m: m.__doc__ or "" for m in ExitCode} | dict(meanings or {})
    i = 0
    while i < len(members):
        same = [m for m in members[i:] if doc[m] == doc[members[i]]]
        label = " / ".join(str(int(m)) for m in same)
        head, *rest = doc[members[i]].split("\n")
        lines.append(f"  {label:<2} {head}" if len(same) == 1 else f"  {label}  {head}")
        lines += [f"     {r}" for r in rest]
        i += len(same)
    return "\n".join(lines)
