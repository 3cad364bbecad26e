"""Preparing the lab for a measurement, fast: guests and defined domains created concurrently through
the libvirt API (one connection per host, a few calls in flight), and a concurrent wipe. None of
this is timed; it only keeps `scripts/bench --quick` short."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import libvirt

from labkit.client import Lab

T = TypeVar("T")
R = TypeVar("R")

# NOTE: starting guests and defining domains is CPU work (QEMU start-up, XML): 4 in flight keep
# this machine's 2 cores busy. Removing a running guest is mostly waiting: virDomainDestroy returns
# ~2 s after QEMU exits on SIGTERM (its log: "terminating on signal 15", then "shutting down" 2 s
# later; libvirt polls until the process is gone, and on these machines PID 1 reaps the
# daemonized QEMU late), so removals run many at once (calls beyond libvirtd's
# max_client_requests, 5 per connection, wait in the daemon's queue).
WORKERS = 4
REMOVERS = 16


def pmap(fn: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    """``[fn(x) for x in items]`` on a few threads (libvirt-python releases the GIL in each call),
    in order; the first exception is raised."""
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items))


def create_guests(labx: Lab, host: str, names: Sequence[str], memory_mib: int, start: bool) -> list[str]:
    """``Lab.define_fast`` for each name (each with its own vTPM secret), concurrently; the secret
    UUIDs in the order of ``names``."""
    labx.conn(host)  # opened once here, not raced for by the workers
    return pmap(lambda n: labx.define_fast(host, n, memory_mib, start=start), names)


def _remove_domain(d: libvirt.virDomain) -> None:
    try:
        if d.isActive():
            d.destroy()
        if d.isPersistent():
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_TPM | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    except libvirt.libvirtError:  # gone meanwhile
        pass


def _remove_secret(s: libvirt.virSecret) -> None:
    with contextlib.suppress(libvirt.libvirtError):  # gone meanwhile
        s.undefine()


def wipe(labx: Lab) -> int:
    """``Lab.wipe`` (every domain and secret on every lab host), concurrently; how many objects
    it removed."""
    doms: list[libvirt.virDomain] = []
    secs: list[libvirt.virSecret] = []
    for h in labx.env["hosts"]:
        c = labx.conn(h)
        doms += c.listAllDomains(0)
        secs += c.listAllSecrets(0)
    pmap(_remove_domain, doms, REMOVERS)
    pmap(_remove_secret, secs, REMOVERS)
    return len(doms) + len(secs)


def remove(labx: Lab, names: Sequence[str], secret_uuids: Sequence[str]) -> None:
    """Remove these domains and secrets from every lab host they are on (one run's guests), and
    nothing else: it may run while the next run's guests are being created."""
    gone, gone_secrets = set(names), {u.lower() for u in secret_uuids}
    doms: list[libvirt.virDomain] = []
    secs: list[libvirt.virSecret] = []
    for h in labx.env["hosts"]:
        c = labx.conn(h)
        doms += [d for d in c.listAllDomains(0) if d.name() in gone]  # name(): no round trip
        secs += [s for s in c.listAllSecrets(0) if s.UUIDString().lower() in gone_secrets]
    pmap(_remove_domain, doms, REMOVERS)
    pmap(_remove_secret, secs, REMOVERS)


def replace_guests(labx: Lab, host: str, names: Sequence[str], memory_mib: int,
                   previous: tuple[Sequence[str], Sequence[str]] | None) -> list[str]:
    """Start fresh guests ``names`` on ``host`` (``create_guests``) while the previous run's
    guests (names, secret UUIDs) are removed in the background; returns once both are done."""
    for h in labx.env["hosts"]:
        labx.conn(h)  # opened here, not raced for by the threads
    with ThreadPoolExecutor(max_workers=1) as bg:
        pending = bg.submit(remove, labx, *previous) if previous else None
        sids = create_guests(labx, host, names, memory_mib, start=True)
        if pending is not None:
            pending.result()
    return sids


def qemu_elapsed_s(labx: Lab, host: str, name: str) -> float | None:
    """QEMU's own duration of the migration that brought ``name`` to ``host`` (the completed job's
    time_elapsed, kept by the destination), or None when libvirt does not report it — e.g. when
    migcoord has read it itself (reading completed statistics without KEEP_COMPLETED clears them)."""
    flags = libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
    try:
        stats = labx.conn(host).lookupByName(name).jobStats(flags)
    except libvirt.libvirtError:
        return None
    ms = stats.get("time_elapsed")
    return ms / 1000 if isinstance(ms, int) else None
