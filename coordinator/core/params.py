"""Pure: a migration policy → migrateToURI3 flags (symbolic names) and typed params.

Flag names omit the ``VIR_MIGRATE_`` prefix; ``hypervisor.Guest.migrate`` turns them into
constants, so this module stays free of libvirt and is tested as a table of cases.
Param keys are libvirt's stable ``VIR_MIGRATE_PARAM_*`` string values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from coordinator.core.defaults import STALL_TIMEOUT_S, TIMEOUT_MINIMUM_S, TIMEOUT_PER_GIB_S
from coordinator.core.errors import BadInput

# libvirt's QEMU driver keeps the bandwidth as an unsigned long of MiB/s and refuses more than
# QEMU_DOMAIN_MIG_BANDWIDTH_MAX = INT64_MAX / (1024 * 1024) MiB/s on 64-bit hosts ("bandwidth must
# be less than ..."), checked only inside migrateToURI3 — after the secrets were provisioned.
MAX_BANDWIDTH_MIB = (2**63 - 1) // 2**20
# QEMU's multifd-channels parameter is a uint8 (1..255).
MAX_PARALLEL = 255
# The longest completion or stall deadline a run accepts (a scaled one is capped here): every wait has a
# bound, and the longest lease migcoord writes (core.lease_rules.MAX_TTL_S) is derived from it.
MAX_DEADLINE_S = 30 * 86400.0


# -- bounds on waits for libvirt (house rule 19: every wait has a bound and a named outcome) ------------
# A libvirt call cannot be cancelled: a call that hangs (a QEMU monitor that never answers, a daemon that
# stopped serving) is left running in a daemon thread and the caller stops waiting at its bound.
#
# One libvirt call (jobStats, abortJob, a domain look-up, a secret undefine, the lease's metadata) that has
# no deadline of its own. libvirt's QEMU driver gives up on a domain job lock after 30 s
# (QEMU_JOB_WAIT_TIME, "cannot acquire state change lock"), and keepalive (below) ends a call to a dead
# peer after 35 s; 45 s is past both with a margin for a loaded 2-core host.
CALL_BOUND_S = 45.0
# From the first virDomainAbortJob (at a deadline or on a signal) until migrateToURI3 returns. The source
# daemon's peer-to-peer connection to the destination has libvirtd's own keepalive (5 s x 5 = 30 s) and a
# Finish on the destination waits at most the 30 s job lock, so an abort that has not returned after
# 60 s will not return by itself: "still aborting".
ABORT_BOUND_S = 60.0
# Everything after the job ended or was given up on: where the VM is, resuming a guest we paused, the
# rollback of our secrets, the lease. They share this budget (each also at most CALL_BOUND_S); closing the
# connections gets one more CALL_BOUND_S, so a run exits at most ABORT_BOUND_S + CLEANUP_BOUND_S +
# CALL_BOUND_S (225 s) after a deadline passed or a signal arrived (``exit_bound_s``).
CLEANUP_BOUND_S = 120.0
# libvirt keepalive on every connection the tool opens (virConnectSetKeepAlive): a ping after
# KEEPALIVE_INTERVAL_S of silence, the connection closed (every call on it fails, none hangs) after
# interval x (count + 1) = 35 s without an answer. virsh's own defaults (-k 5 -K 6), so long migrations
# (migrateToURI3 waits for minutes while pings are answered) are as safe as with virsh; the server side
# (libvirtd.conf keepalive_interval 5, keepalive_count 5) drops a silent client after 30 s anyway. The
# pings are answered by libvirt's event loop in C, not by Python: a loaded 2-core host delays them by
# milliseconds, far from 35 s.
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 6
# How often the monitor may escalate once the deadlines pass before it aborts (post-copy, suspend), each
# restarting the clocks: the main thread's own watchdog allows the monitor (1 + this) x the completion
# deadline before aborting itself (a monitor that died must not leave a migration unbounded).
ESCALATIONS = 2


def positive_seconds(value: float | None, what: str, *, allow_none: bool = False) -> None:
    """A duration the tool waits for: a finite number > 0 (NaN and inf would never fire)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BadInput(f"{what} must be a positive, finite number of seconds, got {value!r}")


def bounded_int(value: int | None, what: str, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"{what} must be a whole number from {low} to {high}, got {value!r}")


@dataclass(frozen=True)
class MigrationPolicy:
    live: bool = True                 # False: offline migration of a shut-off persistent domain
    persist: bool = True              # VIR_MIGRATE_PERSIST_DEST
    undefine_source: bool = True      # VIR_MIGRATE_UNDEFINE_SOURCE (opt-out: --keep-source)
    tls: bool = False                 # VIR_MIGRATE_TLS: encrypt the QEMU migration stream
    bandwidth_mib: int | None = None  # MiB/s
    parallel: int | None = None       # parallel connections
    compression: str | None = None    # e.g. "zlib", "zstd", "xbzrle"
    auto_converge: bool = False
    postcopy: bool = False            # allow a switch to post-copy (opt-in)
    migrate_uri: str | None = None    # e.g. tcp://dst-migration-net
    listen_address: str | None = None
    copy_storage: bool = False        # VIR_MIGRATE_NON_SHARED_DISK for local disks
    unsafe: bool = False              # VIR_MIGRATE_UNSAFE (shared storage libvirt cannot detect)
    max_downtime_ms: int | None = None  # virDomainMigrateSetMaxDowntime once the job runs
    on_deadline: str = ""             # "abort" | "postcopy" | "suspend"; "" = postcopy with --postcopy, else abort


@dataclass(frozen=True)
class Deadlines:
    """When to give up on a running migration job. ``completion`` scales with guest memory
    (like Nova's live_migration_completion_timeout: seconds per GiB); ``stall`` is how long
    the remaining data may fail to shrink."""

    completion_s: float
    stall_s: float


def deadlines(memory_bytes: int, *, per_gib_s: float = TIMEOUT_PER_GIB_S,
              minimum_s: float = TIMEOUT_MINIMUM_S,
              completion_s: float | None = None, stall_s: float = STALL_TIMEOUT_S) -> Deadlines:
    """Pure: an explicit completion timeout wins; else ``per_gib_s`` × GiB, at least ``minimum_s``."""
    positive_seconds(completion_s, "the completion timeout (--timeout)", allow_none=True)
    positive_seconds(stall_s, "the stall timeout (--stall-timeout)")
    positive_seconds(per_gib_s, "the per-GiB timeout")
    positive_seconds(minimum_s, "the minimum timeout")
    for value, what in ((completion_s, "the completion timeout (--timeout)"), (stall_s, "the stall timeout "
                        "(--stall-timeout)"), (minimum_s, "the minimum timeout (--timeout-minimum)")):
        if value is not None and value > MAX_DEADLINE_S:
            raise BadInput(f"{what} must be at most {MAX_DEADLINE_S:.0f} s (30 days), got {value!r}")
    scaled = min(MAX_DEADLINE_S, max(minimum_s, per_gib_s * memory_bytes / 2**30))
    return Deadlines(completion_s=completion_s if completion_s is not None else scaled, stall_s=stall_s)


@dataclass(frozen=True)
class TimeoutPolicy:
    """Operator settings behind ``deadlines``; ``completion_s`` None means "scale with memory"."""

    completion_s: float | None = None
    per_gib_s: float = TIMEOUT_PER_GIB_S
    minimum_s: float = TIMEOUT_MINIMUM_S
    stall_s: float = STALL_TIMEOUT_S
    # The bounds on waits for libvirt (above); smaller ones are for tests and impatient library callers.
    call_s: float = CALL_BOUND_S
    abort_s: float = ABORT_BOUND_S
    cleanup_s: float = CLEANUP_BOUND_S

    def __post_init__(self) -> None:
        deadlines(0, per_gib_s=self.per_gib_s, minimum_s=self.minimum_s, completion_s=self.completion_s,
                  stall_s=self.stall_s)
        positive_seconds(self.call_s, "the bound on one libvirt call")
        positive_seconds(self.abort_s, "the bound on an abort")
        positive_seconds(self.cleanup_s, "the bound on the cleanup")

    def for_memory(self, memory_bytes: int) -> Deadlines:
        return deadlines(memory_bytes, per_gib_s=self.per_gib_s, minimum_s=self.minimum_s,
                         completion_s=self.completion_s, stall_s=self.stall_s)


def exit_bound_s(t: TimeoutPolicy) -> float:
    """Pure: the longest a run waits after a deadline passed or a signal arrived before it exits: the
    abort until migrateToURI3 returns, the shared cleanup budget, closing the connections."""
    return t.abort_s + t.cleanup_s + t.call_s


def job_limit_s(limits: Deadlines, t: TimeoutPolicy) -> float:
    """Pure: how long the main thread lets one migrateToURI3 run before it aborts the job itself, should
    the monitor not have (it aborts at the latest after each of its ESCALATIONS restarted the clocks)."""
    return (1 + ESCALATIONS) * limits.completion_s + t.call_s


ON_DEADLINE = ("abort", "postcopy", "suspend")


def on_deadline(p: MigrationPolicy, switched_to_postcopy: bool, suspended: bool = False) -> str:
    """Pure: what to do when a deadline passes. Each escalation happens once: a switch to
    post-copy (when asked for, or allowed with --postcopy), a suspension of the guest so the
    migration converges (when asked for); after that, or by default, abort."""
    wanted = p.on_deadline or ("postcopy" if p.postcopy else "abort")
    if wanted == "postcopy" and p.live and not switched_to_postcopy:
        return "postcopy"
    if wanted == "suspend" and p.live and not suspended:
        return "suspend"
    return "abort"


def validate(p: MigrationPolicy) -> None:
    """Combinations libvirt would reject only at migration time are refused up front."""
    bounded_int(p.parallel, "parallel connections (--parallel-connections)", 1, MAX_PARALLEL)
    bounded_int(p.bandwidth_mib, "the bandwidth in MiB/s (--bandwidth)", 1, MAX_BANDWIDTH_MIB)
    if p.compression in ("zlib", "zstd") and not p.parallel:
        raise BadInput(f"{p.compression} compression needs parallel migration",
                       hint="add --parallel-connections N")
    if p.on_deadline and p.on_deadline not in ON_DEADLINE:
        raise BadInput(f"--on-deadline must be one of {', '.join(ON_DEADLINE)}, got {p.on_deadline!r}")
    if p.max_downtime_ms is not None and p.max_downtime_ms <= 0:
        raise BadInput(f"--max-downtime must be a positive number of milliseconds, got {p.max_downtime_ms}")


def migration_flags(p: MigrationPolicy) -> frozenset[str]:
    """Always peer-to-peer: the source daemon talks to the destination directly, so the
    migration survives this client's connection and the stream never passes through us."""
    if not p.live and not p.persist:
        raise BadInput("offline migration needs a persistent destination (do not combine with --no-persist)")
    validate(p)
    flags = {"PEER2PEER"}
    flags.add("LIVE" if p.live else "OFFLINE")
    if p.persist:
        flags.add("PERSIST_DEST")
    if p.undefine_source:
        flags.add("UNDEFINE_SOURCE")
    if p.tls:
        flags.add("TLS")
    if p.parallel:
        flags.add("PARALLEL")
    if p.compression:
        flags.add("COMPRESSED")
    if p.auto_converge and p.live:
        flags.add("AUTO_CONVERGE")
    if (p.postcopy or p.on_deadline == "postcopy") and p.live:
        flags.add("POSTCOPY")
    if p.copy_storage and p.live:
        flags.add("NON_SHARED_DISK")
    if p.unsafe:
        flags.add("UNSAFE")
    return frozenset(flags)


def migration_params(p: MigrationPolicy, dest_name: str | None = None) -> dict[str, Any]:
    validate(p)
    params: dict[str, Any] = {}
    if dest_name:
        params["destination_name"] = dest_name
    if p.bandwidth_mib is not None:
        params["bandwidth"] = int(p.bandwidth_mib)
    if p.parallel:
        params["parallel.connections"] = int(p.parallel)
    if p.compression:
        params["compression"] = p.compression
    if p.migrate_uri:
        params["migrate_uri"] = p.migrate_uri
    if p.listen_address:
        params["listen_address"] = p.listen_address
    return params
