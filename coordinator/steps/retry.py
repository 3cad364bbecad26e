"""Bounded retries of transient failures, built from a policy with an injected sleep (house rules 3, 8).

tenacity is imported when a ``Retrying`` is built, not with this module: ``RetryPolicy`` is part of
every ``MigrateOptions``, and ``migcoord check`` (which never retries) should not pay for tenacity.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coordinator.core.defaults import RETRY_ATTEMPTS, RETRY_MAX_SECONDS
from coordinator.core.errors import HostUnreachable
from coordinator.core.params import bounded_int, positive_seconds
from coordinator.steps.journal import Journal
from coordinator.virt.errors import error_summary, is_transient

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger("migcoord")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient failures: attempts and total time, exponential backoff + jitter."""

    attempts: int = RETRY_ATTEMPTS
    max_seconds: float = RETRY_MAX_SECONDS
    initial_wait: float = 1.0
    max_wait: float = 15.0

    def __post_init__(self) -> None:
        bounded_int(self.attempts, "the number of attempts (--retries)", 1, 1000)
        positive_seconds(self.max_seconds, "the retry time budget (--retry-max-seconds)")
        positive_seconds(self.initial_wait, "the first retry wait")
        positive_seconds(self.max_wait, "the longest retry wait")


def retryable(exc: BaseException) -> bool:
    """Transient libvirt errors, and connection failures the libvirt seam marked transient."""
    if isinstance(exc, HostUnreachable):
        return bool(exc.data.get("transient"))
    return is_transient(exc)


def _backoff(rp: RetryPolicy) -> tenacity.wait.wait_base:
    """Exponential backoff with jitter. tenacity >= 9.2 calls the first wait ``multiplier`` (and
    deprecates ``initial``); older ones (Debian 12 ships 8.2.1) know only ``initial``."""
    import tenacity  # NOTE: here, not at the top: see the module docstring (start-up time)

    params = inspect.signature(tenacity.wait_exponential_jitter.__init__).parameters
    first = "multiplier" if "multiplier" in params else "initial"
    return tenacity.wait_exponential_jitter(**{first: rp.initial_wait}, max=rp.max_wait, jitter=rp.initial_wait)


def build_retrying(rp: RetryPolicy, sleep: Callable[[float], None],
                   journal: Journal | None = None) -> tenacity.Retrying:
    import tenacity  # NOTE: here, not at the top: see the module docstring (start-up time)

    def before_sleep(rs: tenacity.RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        wait = rs.next_action.sleep if rs.next_action else 0.0
        log.warning("attempt %d failed (%s); retrying in %.1fs", rs.attempt_number, error_summary(exc), wait)
        if journal is not None:
            journal.record("retry-wait", attempt=rs.attempt_number, error=error_summary(exc),
                           wait_s=round(wait, 2))

    return tenacity.Retrying(
        before_sleep=before_sleep,
        retry=tenacity.retry_if_exception(retryable),
        stop=tenacity.stop_after_attempt(rp.attempts) | tenacity.stop_after_delay(rp.max_seconds),
        wait=_backoff(rp),
        sleep=sleep, reraise=True)
