"""One exception tree. Each class fixes the CLI exit code, so the mapping lives in one place.

Messages name the thing and say what to do; they never contain a secret value
(house rule 11): build them from UUIDs, usages, URIs and paths only.
"""
from __future__ import annotations

from typing import Any

from .exit_codes import ExitCode, for_signal


class MigcoordError(Exception):
    """Base class. ``exit_code`` is what ``migcoord`` exits with when this escapes."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInput(MigcoordError):
    """Usage error or unusable input (malformed XML, bad URI, unreadable key file): nothing changed."""

    exit_code = ExitCode.USAGE


class Blocked(MigcoordError):
    """A pre-flight condition forbids the migration; nothing was changed anywhere."""

    exit_code = ExitCode.BLOCKED


class SecretUnavailable(Blocked):
    """No configured value source can supply a secret's value (e.g. private on the source)."""


class SecretMismatch(Blocked):
    """The destination holds a secret with the same UUID but different usage, flags or value."""


class Undecided(MigcoordError):
    """Nothing blocks, but a fact that decides success is unknown (a decisive unknown: e.g. a private
    destination copy whose value cannot be compared, or whether a disk exists on the destination
    without SSH). Nothing was changed anywhere; the hint says how to make it known, or pass
    ``--accept-unknown`` (``MigrateOptions.accept_unknown``) to go on anyway. Exit 6 ("UNKNOWN")."""

    exit_code = ExitCode.UNKNOWN


class HostUnreachable(MigcoordError):
    """A libvirt or SSH endpoint could not be reached (after retries where retrying is safe).
    Raised before anything changed (a failure mid-migration becomes MigrationFailed)."""

    exit_code = ExitCode.BLOCKED


class HostError(MigcoordError):
    """A libvirt call failed before anything was changed (or in a read-only command): nothing to undo."""

    exit_code = ExitCode.BLOCKED


class Interrupted(MigcoordError):
    """The run was asked to stop (Ctrl-C / SIGTERM): the running job was aborted and what this run
    created was removed. ``exit_code`` is 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, *, signum: int = 2, hint: str | None = None, **data: Any) -> None:
        super().__init__(message, hint=hint, **data)
        self.exit_code = for_signal(signum)


class MigrationFailed(MigcoordError):
    """migrateToURI3 failed for good; the VM is still on the source (``data['outcome']``)."""

    exit_code = ExitCode.FAILED


class Unsettled(MigcoordError):
    """A wait on libvirt hit its bound (``core.params``: the abort or the cleanup bound) and the outcome is
    not settled: a migration job may still run, or where the VM runs could not be asked. The message says
    where the VM is believed to be and what to do (``migcoord abort``, virsh); the locks were released and
    this run's lease was left to mark the job. Exit 7, so automation never retries it blindly."""

    exit_code = ExitCode.UNSETTLED


class VerificationFailed(MigcoordError):
    """libvirt reported success but the VM is not where and how it should be. The migrate flow turns
    this into the "migrated-unverified" outcome (exit 5), never a failure: the VM has moved."""

    exit_code = ExitCode.UNVERIFIED


class Busy(MigcoordError):
    """Another migcoord run holds the lock for this domain or host: nothing was tried, try again
    later. Exit 75 (``EX_TEMPFAIL``), so cron and systemd can tell it from a blocking check (1)."""

    exit_code = ExitCode.BUSY
