"""Where the time of a migration goes (issue #15): the phase recorder on a fake clock, the
``Timings`` value, the start-up parsed from ``/proc``, the ``--timings`` rendering and the
``migrate --json`` key. No real time is measured here."""
from __future__ import annotations

import json

import pytest

from coordinator.cli import timings_output
from coordinator.cli.main import main
from coordinator.core.errors import BadInput
from coordinator.core.model import MigrationResult
from coordinator.core.timings import KEYS, PHASES, PhaseRecorder, Timings, process_age
from coordinator.flows import migrate as flows_migrate


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


def test_phases_are_exclusive_repeatable_and_other_is_the_rest():
    clock = FakeClock()
    rec = PhaseRecorder(clock)
    clock.advance(0.5)                      # before any phase: other
    with rec.phase("connect"):
        clock.advance(1.0)
    with rec.phase("plan"):
        clock.advance(2.0)
        with rec.phase("checks"):           # nested: the inner phase gets its time
            clock.advance(3.0)
        clock.advance(0.25)
    with rec.phase("connect"):              # repeated: added up
        clock.advance(0.5)
    clock.advance(0.125)
    rec.qemu_elapsed(1500)
    t = rec.finish()
    assert t.phases == {"connect": 1.5, "plan": 2.25, "checks": 3.0}
    assert t.flow_s == pytest.approx(7.375)
    assert t.other_s == pytest.approx(0.625)
    assert t.qemu_elapsed_s == 1.5
    d = t.as_dict()
    assert list(d) == list(KEYS)
    assert d["provision"] is None and d["startup"] is None  # never entered / unknown: null
    assert sum(v for k, v in d.items() if k in PHASES and v is not None) + d["other"] == pytest.approx(d["total"])


def test_a_phase_still_open_counts_up_to_finish_and_an_exception_closes_it():
    clock = FakeClock()
    rec = PhaseRecorder(clock)
    with pytest.raises(RuntimeError), rec.phase("migration"):
        clock.advance(2.0)
        raise RuntimeError("failed")
    cm = rec.phase("verify")
    cm.__enter__()
    clock.advance(1.0)
    t = rec.finish()
    assert t.phases == {"migration": 2.0, "verify": 1.0}
    assert t.other_s == 0.0


def test_unknown_phase_is_refused():
    rec = PhaseRecorder(FakeClock())
    for name in ("startup", "coffee"):
        with pytest.raises(ValueError), rec.phase(name):
            pass


def test_startup_goes_in_front_of_the_total():
    t = Timings(phases={"connect": 1.0, "migration": 3.0}, flow_s=5.0, qemu_elapsed_s=2.5).with_startup(0.2)
    d = t.as_dict()
    assert d["startup"] == 0.2 and d["total"] == 5.2 and d["other"] == 1.0 and d["qemu_elapsed"] == 2.5
    assert Timings(flow_s=1.0).with_startup(None).as_dict()["startup"] is None
    assert Timings(flow_s=1.0).with_startup(-0.01).startup_s == 0.0  # a clock tick late: never negative


def test_a_result_without_timings_still_has_every_key():
    r = MigrationResult(domain="vm", uuid="u", source_uri="a", dest_uri="b", state="dry-run", attempts=0,
                        duration_s=0.0)
    assert r.as_dict()["timings"] == dict.fromkeys(KEYS)


@pytest.mark.parametrize("comm", ["python3", "my (odd) name", "a) b c"])
def test_process_age_from_proc_stat(comm):
    # fields 3.. after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime priority nice threads itrealvalue starttime(22) ...
    rest = ["S"] + ["0"] * 18 + ["12345"] + ["0"] * 30
    stat = f"4242 ({comm}) " + " ".join(rest)
    assert process_age(stat, 123.50, 100) == pytest.approx(0.05)
    assert process_age(stat, 123.40, 100) == 0.0  # the clock read before the tick: never negative


def test_startup_of_this_process_is_known_and_positive():
    s = timings_output.startup_s()
    assert s is not None and s > 0


def test_render_one_line_per_key():
    d = Timings(phases={"connect": 0.5, "migration": 2.0}, flow_s=4.0, qemu_elapsed_s=1.5).with_startup(1.0).as_dict()
    lines = timings_output.render(d).splitlines()
    assert lines[0] == "timings:"
    assert [ln.split()[0] for ln in lines[1:]] == list(KEYS)
    by = {ln.split()[0]: ln for ln in lines[1:]}
    assert by["connect"].split()[1:] == ["0.500s", "10.0%"]
    assert by["plan"].split()[1:] == ["-"]
    assert by["total"].split()[1:] == ["5.000s"]
    assert "within migration" in by["qemu_elapsed"]


SRC, DST = "qemu+tls://hv1.invalid/system", "qemu+tls://hv2.invalid/system"


def _argv(tmp_path, *extra, domain="vm1"):
    return ["--quiet", "migrate", domain, "--from", SRC, "--to", DST, "--journal", str(tmp_path / "j"),
            "--lock-dir", str(tmp_path / "locks"), *extra]


def test_migrate_json_always_has_timings_with_startup(tmp_path, monkeypatch, capsys):
    def fake_migrate(domain, src, dst, options, runtime):
        return MigrationResult(domain=domain, uuid="u", source_uri=src, dest_uri=dst, state="migrated", attempts=1,
                               duration_s=3.0, timings=Timings(phases={"migration": 2.0}, flow_s=3.0))

    monkeypatch.setattr(flows_migrate, "migrate", fake_migrate)
    assert main(_argv(tmp_path, "--json")) == 0
    out, err = capsys.readouterr()
    t = json.loads(out)["timings"]
    assert set(t) == set(KEYS)
    assert t["startup"] > 0 and t["total"] == pytest.approx(3.0 + t["startup"], abs=0.002)
    assert "timings:" not in err  # only with --timings

    assert main(_argv(tmp_path, "--timings")) == 0
    out, err = capsys.readouterr()
    assert "timings:" in err and "migration" in err and "timings:" not in out


def test_a_failed_migrate_reports_its_timings_too(tmp_path, capsys):
    """The real flow, refusing a bad domain name before any connection: --json carries the timings
    of what ran (start-up and the flow's own time), --timings prints them."""
    rc = main(_argv(tmp_path, "--json", "--timings", domain="bad\nname"))
    out, err = capsys.readouterr()
    assert rc == BadInput.exit_code
    t = json.loads(out)["timings"]
    assert set(t) == set(KEYS) and t["connect"] is None and t["total"] >= t["startup"] > 0
    assert "timings:" in err


def test_the_flow_records_connect_and_hands_the_timings_to_an_error(tmp_path):
    """flows.migrate on a fake clock: the connection attempts (retried, on the injected sleep)
    are the "connect" phase; the error raised carries the timings."""
    from coordinator.core.errors import HostUnreachable
    from coordinator.steps.parameters import MigrateOptions, Runtime
    from coordinator.steps.retry import RetryPolicy

    clock = FakeClock()
    calls = []

    def connect(uri):
        calls.append(uri)
        clock.advance(0.25)
        raise HostUnreachable(f"cannot connect to {uri}", transient=len(calls) < 2)

    rt = Runtime(connect=connect, sleep=clock.advance, clock=clock, lock_dir=tmp_path)
    with pytest.raises(HostUnreachable) as e:
        flows_migrate.migrate("vm1", SRC, DST, MigrateOptions(retry=RetryPolicy(attempts=3)), rt)
    t = e.value.data["timings"]
    assert len(calls) == 2                                  # one transient failure retried, then permanent
    assert t["connect"] > 0.5 and t["other"] == 0.0         # two attempts of 0.25 s plus the backoff wait
    assert t["total"] == t["connect"] and t["startup"] is None and t["migration"] is None
