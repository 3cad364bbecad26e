"""The two parameter objects every operation takes: what the operator asked for (``MigrateOptions``)
and what the run is wired to (``Runtime``: connections, time, journal, events, locks).

Splitting them keeps signatures short and makes injection explicit: tests hand in a ``Runtime``
with their own ``connect``/``sleep``/``clock`` (house rule 8); the CLI builds both from argv.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.core.model import EventSink
from coordinator.core.params import MigrationPolicy, TimeoutPolicy
from coordinator.steps.journal import Journal
from coordinator.steps.keys import KeyRing
from coordinator.core.defaults import DEFAULT_LOCK_DIR
from coordinator.core.secret_rules import SecretPolicy
from coordinator.steps.retry import RetryPolicy
from coordinator.virt.host import Host

if TYPE_CHECKING:  # the SSH seam is loaded only when SSH is used
    from coordinator.ssh.runner import SshConfig


def _no_events(_event: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class MigrateOptions:
    """Everything the operator decides about one migration (and every migration of an evacuation)."""

    policy: MigrationPolicy = field(default_factory=MigrationPolicy)
    secret_policy: SecretPolicy = field(default_factory=SecretPolicy)
    keyring: KeyRing = field(default_factory=KeyRing)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: TimeoutPolicy = field(default_factory=TimeoutPolicy)
    ssh: SshConfig | None = None
    skip: tuple[str, ...] = ()   # check ids or tags not to run
    waive: tuple[str, ...] = ()  # blocking check ids to let pass (recorded)
    dry_run: bool = False
    # Go on although a fact that decides success is unknown (checks.registry.decisive; recorded in the
    # journal). Off: such a run is refused before anything changes (core.errors.Undecided, exit 6).
    accept_unknown: bool = False


@dataclass(frozen=True)
class Runtime:
    """What a run talks to and how it keeps time; the defaults are the real ones."""

    connect: Callable[[str], Host] = Host.open
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    journal: Journal = field(default_factory=Journal)
    on_event: EventSink = _no_events
    lock_dir: Path = DEFAULT_LOCK_DIR
    wall: Callable[[], float] = time.time  # epoch seconds: lease expiry other coordinators compare
    # Set by whoever wants the run to stop (an evacuation on Ctrl-C): the running job is aborted.
    cancel: threading.Event = field(default_factory=threading.Event)
