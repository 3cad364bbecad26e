"""checks.context: the per-run memo of what hosts say, and a Target shared by several destinations."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from checks.context import Memo, Target
from coordinator.core.domain.document import read_document
from coordinator.virt.guest import GuestStatus


def test_memo_asks_each_key_once_even_when_asked_concurrently():
    asked: list[str] = []

    def ask(key: str) -> str:
        asked.append(key)
        time.sleep(0.01)  # others ask meanwhile
        return key.upper()

    memo = Memo()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda k: memo.get(k, lambda: ask(k)), ["a", "b"] * 20))
    assert got == ["A", "B"] * 20 and sorted(asked) == ["a", "b"]


def test_memo_remembers_none_but_not_a_failure():
    memo, calls = Memo(), []
    assert memo.get("x", lambda: calls.append(1)) is None and memo.get("x", lambda: calls.append(2)) is None
    assert calls == [1]

    def boom() -> int:
        raise RuntimeError("host went away")

    with pytest.raises(RuntimeError):
        memo.get("y", boom)
    assert memo.get("y", lambda: 5) == 5


class CountingGuest:
    name = "vm1"

    def __init__(self) -> None:
        self.calls = {"status": 0, "job": 0}
        self.lock = threading.Lock()

    def status(self) -> GuestStatus:
        with self.lock:
            self.calls["status"] += 1
        return GuestStatus("running", True, True, False)

    def job(self) -> None:
        with self.lock:
            self.calls["job"] += 1


def test_a_target_reads_status_and_job_once_for_every_destination_and_thread():
    g = CountingGuest()
    t = Target(ident="vm1", guest=g, doc=read_document(["<domain><name>vm1</name></domain>"]))  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: (t.status, t.job()), range(40)))
    assert g.calls == {"status": 1, "job": 1} and t.name == "vm1"


def test_each_run_of_a_context_asks_afresh_unless_the_caller_shares_a_memo():
    from check_fakes import StubHost, context

    from checks.registry import CheckSpec, Registry, passed, run_checks

    asked: list[int] = []
    dst = StubHost("qemu+tls://hv2/system", free_memory=lambda: asked.append(1) or 1)
    reg = Registry()

    @reg.check("FREE", CheckSpec(needs=()))
    def free(ctx, t):
        return passed(str(ctx.host_facts.free_memory()))

    names = [f"vm{i}" for i in range(5)]
    ctx = context(names, dst=dst, dst_uri=dst.uri)
    run_checks(ctx, registry=reg)
    run_checks(ctx, registry=reg)  # e.g. after the operator freed memory: asked again
    assert len(asked) == 2
    shared = context(names, dst=dst, dst_uri=dst.uri, memo=Memo())
    run_checks(shared, registry=reg)
    run_checks(shared, registry=reg)
    assert len(asked) == 3
