"""Frozen value types shared by the planner, the secrets work, the checks and the CLI. No I/O here."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from .timings import NO_TIMINGS, Timings

# Where a run's progress events go (a dict each: ``event`` names it); the CLI's --metrics-file, the
# bench and library callers plug in here.
EventSink = Callable[[dict[str, Any]], None]


class SecretKind(enum.StrEnum):
    """Why a domain needs a secret (where in the domain XML it was found)."""

    VTPM = "vtpm"
    DISK_ENCRYPTION = "disk-encryption"
    DISK_AUTH = "disk-auth"
    HOSTDEV_AUTH = "hostdev-auth"
    NVRAM_AUTH = "nvram-auth"


@dataclass(frozen=True)
class SecretRef:
    """One reference to a libvirt secret in a domain XML.

    ``uuid`` is canonical (lowercase, dashed) or None when the XML references the secret
    by usage; ``usage_type`` is what libvirt will require of the secret (vtpm, volume,
    ceph, iscsi); ``usage_id`` is the usage string for ``usage=`` references.
    ``location`` is an XPath-like path to the element, ``target`` the device it belongs
    to (e.g. the disk's target dev) when there is one.
    """

    uuid: str | None
    usage_type: str
    kind: SecretKind
    location: str
    usage_id: str | None = None
    target: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Identity for de-duplication: by UUID, else by usage."""
        return ("uuid", self.uuid) if self.uuid else ("usage", f"{self.usage_type}:{self.usage_id}")


@dataclass(frozen=True)
class SecretInfo:
    """A secret as one host's libvirt reports it (definition only, never the value)."""

    uuid: str
    usage_type: str
    usage_id: str | None
    ephemeral: bool
    private: bool
    xml: str = field(repr=False)


def wipe_bytes(data: bytes) -> bool:
    """Zero the buffer of an immutable ``bytes`` object that holds a secret value, when nothing else
    can be looking at it; True if it was zeroed.

    NOTE: only for the copies an outside API forces on us: libvirt-python's ``virSecret.value()``
    returns a new ``bytes`` and ``virSecret.setValue()`` accepts nothing else (its ``z#`` argument
    refuses a bytearray). Such an object is freed by its last reference but its memory is not
    cleared, so the value would stay readable in the heap. It is zeroed only when this is CPython, it
    is exactly ``bytes``, longer than one byte (CPython shares the empty and the one-byte objects),
    and the caller's reference plus the argument's are the only ones (``sys.getrefcount``): then no
    other code holds it, so no one can observe the change. Otherwise it is left alone (False)."""
    import sys

    if (sys.implementation.name != "cpython" or type(data) is not bytes or len(data) < 2
            or sys.getrefcount(data) > 3):  # the caller's name, this parameter, getrefcount's argument
        return False
    import ctypes  # NOTE: here: only a value read through libvirt comes this way

    # ob_sval follows the fixed header: bytes.__basicsize__ counts it plus its terminating NUL.
    ctypes.memset(id(data) + bytes.__basicsize__ - 1, 0, len(data))
    return True


def command_program(cmd: str) -> tuple[str, int]:
    """What of a ``--secret-command`` may be shown (journal, JSON, events, ``config show``): its
    program (argv[0]) and how many arguments are hidden. The other words may be credentials, so they
    are never shown; a command that cannot be split is shown as ``(unparsable command)``."""
    import shlex

    try:
        argv = shlex.split(cmd)
    except ValueError:
        return "(unparsable command)", 0
    return (argv[0], len(argv) - 1) if argv else ("(empty command)", 0)


class SecretValue:
    """A secret's bytes and where they came from.

    The bytes live in a private ``bytearray`` slot: they never appear in repr/str, ``vars()`` and
    ``dataclasses.asdict`` cannot reach them (no ``__dict__``, not a dataclass; a dataclass holding
    one cannot be ``asdict``-ed either), pickling and copying are refused, and ``wipe()`` zeroes
    them in place when the run no longer needs them. ``data`` is a read-only view, not a copy."""

    __slots__ = ("__buf", "__wiped", "source")
    source: str  # "source-api", "file:PATH", "dir:PATH", "command:ARGV0", "stdin"

    def __init__(self, data: bytes | bytearray | memoryview, source: str) -> None:
        self.__buf = bytearray(data)
        self.__wiped = False
        self.source = source

    @property
    def data(self) -> memoryview:
        return memoryview(self.__buf).toreadonly()

    def __len__(self) -> int:
        return len(self.__buf)

    def wipe(self) -> None:
        """Overwrite the bytes with zeros (every ``data`` view then reads zeros)."""
        self.__buf[:] = bytes(len(self.__buf))
        self.__wiped = True

    @property
    def wiped(self) -> bool:
        return self.__wiped

    def __repr__(self) -> str:
        return f"SecretValue(source={self.source!r}, {len(self.__buf)} bytes)"

    def __str__(self) -> str:
        return f"<secret value from {self.source}>"

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __reduce__(self) -> Any:  # never pickled into a file or another process by accident
        raise TypeError("SecretValue cannot be pickled")

    def __getstate__(self) -> Any:
        raise TypeError("SecretValue cannot be pickled or copied")

    def __copy__(self) -> Any:
        raise TypeError("SecretValue cannot be copied")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError("SecretValue cannot be copied")


class SecretAction(enum.StrEnum):
    """What the run does (or did) about one secret on the destination."""

    REUSE = "reuse"          # present and verified (or unverifiable but accepted)
    PROVISION = "provision"  # missing: define + set value
    RESET_VALUE = "reset-value"  # present, private on dst, value re-set on request
    BLOCK = "block"          # cannot proceed


class Verdict(enum.Enum):
    """What the destination needs for one secret: (action, destination status, failing check id)."""


    MISSING_ON_SOURCE = (SecretAction.BLOCK, "missing", "SECRET-MISSING-ON-SOURCE")  # on neither host
    SOURCE_USAGE_MISMATCH = (SecretAction.BLOCK, "unknown", "SECRET-USAGE-MISMATCH")
    NO_VALUE_SOURCE = (SecretAction.BLOCK, "missing", "SECRET-NO-VALUE-SOURCE")
    PROVISION = (SecretAction.PROVISION, "missing", None)
    # Missing by UUID, but another secret there already has its usage: virSecretDefineXML would refuse.
    DEST_USAGE_TAKEN = (SecretAction.BLOCK, "usage-taken", "SECRET-USAGE-TAKEN")
    DEST_USAGE_MISMATCH = (SecretAction.BLOCK, "usage-mismatch", "SECRET-USAGE-MISMATCH")
    PRIVATE_MISMATCH = (SecretAction.BLOCK, "private-mismatch", "SECRET-FLAGS-MISMATCH")
    EPHEMERAL_MISMATCH = (SecretAction.BLOCK, "ephemeral-mismatch", "SECRET-FLAGS-MISMATCH")
    # NOTE: the 4th element keeps these two apart: enum members with equal values are aliases of one member
    # (UNVERIFIABLE_NO_VALUE was UNVERIFIABLE_PRIVATE, and a private copy's reason read "no value available").
    UNVERIFIABLE_PRIVATE = (SecretAction.REUSE, "unverifiable", "SECRET-UNVERIFIABLE", "private")
    UNVERIFIABLE_NO_VALUE = (SecretAction.REUSE, "unverifiable", "SECRET-UNVERIFIABLE", "no-value")
    RESET_VALUE = (SecretAction.RESET_VALUE, "unverifiable", None)
    MATCH = (SecretAction.REUSE, "match", None)
    VALUE_MISMATCH = (SecretAction.BLOCK, "value-mismatch", "SECRET-VALUE-MISMATCH")
    # The value would have to be read or sent over an unprotected channel: it is neither.
    VALUE_NOT_READ = (SecretAction.BLOCK, "not-compared", "SECRET-PLAINTEXT-TRANSPORT")

    @property
    def action(self) -> SecretAction:
        return self.value[0]

    @property
    def dest_status(self) -> str:
        return str(self.value[1])

    @property
    def check_id(self) -> str | None:
        return self.value[2]

    @property
    def is_mismatch(self) -> bool:
        """The destination holds a copy that differs (SecretMismatch rather than plain Blocked)."""
        return self.dest_status.endswith("-mismatch")



@dataclass(frozen=True)
class SecretPlan:
    """The decision for one secret the domain depends on (``core.secret_rules`` makes it)."""

    ref: SecretRef
    uuid: str | None
    verdict: Verdict
    source_status: str  # e.g. "readable", "private", "missing"
    reason: str = ""
    value_source: str | None = None
    usage_id: str | None = None  # as resolved on the source (a UUID reference carries none)

    @property
    def action(self) -> SecretAction:
        return self.verdict.action

    @property
    def dest_status(self) -> str:
        """e.g. "missing", "match", "value-mismatch", "unverifiable"."""
        return self.verdict.dest_status

    @property
    def check_id(self) -> str | None:
        """The pre-flight check this plan fails (None: it passes)."""
        return self.verdict.check_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid, "kind": str(self.ref.kind), "usage_type": self.ref.usage_type,
            "usage_id": self.usage_id or self.ref.usage_id, "location": self.ref.location, "target": self.ref.target,
            "source_status": self.source_status, "dest_status": self.dest_status,
            "action": str(self.action), "reason": self.reason, "value_source": self.value_source,
        }


@dataclass(frozen=True)
class MigrationResult:
    """What ``migrate`` did. ``secrets`` lists each secret's plan as carried out."""

    domain: str
    uuid: str
    source_uri: str
    dest_uri: str
    state: str  # "migrated" | "migrated-unverified" | "already-on-destination" | "dry-run"
    attempts: int
    duration_s: float
    secrets: tuple[SecretPlan, ...] = ()
    dest_state: str = ""
    warnings: tuple[str, ...] = ()  # "migrated-unverified": what verification found or could not do
    timings: Timings | None = None  # where the time went (flows.migrate records it; the CLI adds start-up)

    @property
    def ok(self) -> bool:
        """Done and verified (or nothing to do)."""
        return self.state in ("migrated", "already-on-destination", "dry-run")

    @property
    def moved(self) -> bool:
        """The domain runs on the destination now (verified or not)."""
        return self.state in ("migrated", "migrated-unverified", "already-on-destination")

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain, "uuid": self.uuid, "source": self.source_uri,
            "destination": self.dest_uri, "state": self.state, "attempts": self.attempts,
            "duration_s": round(self.duration_s, 3), "dest_state": self.dest_state,
            "secrets": [s.as_dict() for s in self.secrets], "warnings": list(self.warnings),
            "timings": self.timings.as_dict() if self.timings is not None else dict(NO_TIMINGS),
        }
