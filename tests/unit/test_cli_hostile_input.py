"""Hostile or careless command lines (issue #12): each row runs the real CLI in-process
(``coordinator.cli.main.main``) and must give exit 2, exactly one line on stderr starting
``migcoord: error:``, no traceback, nothing written, and NO connection attempted.

"No connection" is observed by MOCKING the outside systems' entry points — ``libvirt.open``,
``libvirt.openAuth``, ``libvirt.openReadOnly`` (the only calls ``virt.host.Host.open`` makes) and
paramiko's ``SSHClient.connect`` — with recorders: a real connection attempt cannot be observed
without a host to attempt it on. As a second guard every remote URI names a host under
``.invalid`` (RFC 2606: never resolvable), so nothing could be contacted even if it were tried.

Usage errors from argparse itself (missing arguments, unknown options, bad types) are printed
on one line too: ``migcoord: error: MESSAGE (see migcoord CMD --help)``; ``--help`` shows usage.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import libvirt
import pytest

from coordinator.cli.main import main

U = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
SRC = "qemu+tls://hv1.invalid/system"
DST = "qemu+tls://hv2.invalid/system"


def _key(tmp: Path, mode: int = 0o600) -> Path:
    p = tmp / "key"
    p.write_bytes(b"value")
    p.chmod(mode)
    return p


def _loop(tmp: Path) -> Path:
    (tmp / "la").symlink_to(tmp / "lb")
    (tmp / "lb").symlink_to(tmp / "la")
    return tmp / "la"


def _symlink(tmp: Path) -> Path:
    (tmp / "link").symlink_to(_key(tmp))
    return tmp / "link"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo", 0o600)
    return tmp / "fifo"


def _dir(tmp: Path, mode: int) -> Path:
    d = tmp / "keys"
    d.mkdir()
    d.chmod(mode)
    return d


def _planted(tmp: Path) -> Path:
    """A symlink where the tool would write (report, journal), pointing at a file it must not touch."""
    victim = tmp / "victim"
    victim.write_text("untouched")
    (tmp / "out").symlink_to(victim)
    return tmp / "out"


Args = Callable[[Path], list[str]]


def migrate(*extra: str | Callable[[Path], object], domain: str = "vm1", src: str = SRC, dst: str = DST) -> Args:
    return lambda t: ["migrate", domain, "--from", src, "--to", dst, "--journal", str(t / "journal"),
                      "--lock-dir", str(t / "locks"), *[str(x(t)) if callable(x) else x for x in extra]]


def evacuate(*extra: str | Callable[[Path], object], src: str = SRC, dsts: tuple[str, ...] = (DST,)) -> Args:
    return lambda t: ["evacuate", "--from", src, *[a for d in dsts for a in ("--to", d)],
                      "--journal", str(t / "journal"), "--lock-dir", str(t / "locks"),
                      *[str(x(t)) if callable(x) else x for x in extra]]


def command(cmd: str, *extra: str, domain: str = "vm1", src: str = SRC, dst: str = DST) -> Args:
    return lambda t: [cmd, domain, "--from", src, "--to", dst, *extra]


ROWS: list[tuple[str, Args]] = [
    # --secret-command
    ("command-unclosed-quote", migrate("--secret-command", 'a "b')),
    ("command-empty", migrate("--secret-command", "")),
    ("command-blank", migrate("--secret-command", "   ")),
    # URIs
    ("src-unclosed-ipv6", migrate(src="qemu+tcp://[::1/system")),
    ("dst-unclosed-ipv6", migrate(dst="qemu+tcp://[::1/system")),
    ("dst-port-out-of-range", migrate(dst="qemu+tls://hv2.invalid:99999/system")),
    ("dst-port-not-a-number", migrate(dst="qemu+tls://hv2.invalid:x/system")),
    ("src-not-libvirt", migrate(src="http://hv1.invalid/system")),
    ("src-space", migrate(src="qemu+tls://hv1 .invalid/system")),
    ("dst-newline", migrate(dst="qemu+tls://hv2.invalid/system\nX")),
    ("src-is-dst", migrate(dst=SRC)),
    ("dst-localhost-remote-src", migrate(dst="qemu+tcp://localhost/system")),
    ("dst-127-remote-src", migrate(dst="qemu+tcp://127.0.0.5/system")),
    ("dst-local-socket-remote-src", migrate(dst="qemu:///system")),
    # key files
    ("secret-file-loop", migrate("--secret-file", lambda t: f"{U}={_loop(t)}/x")),
    ("secret-file-too-long", migrate("--secret-file", f"{U}=/{'x' * 5000}")),
    ("secret-file-symlink", migrate("--secret-file", lambda t: f"{U}={_symlink(t)}")),
    ("secret-file-fifo", migrate("--secret-file", lambda t: f"{U}={_fifo(t)}")),
    ("secret-file-device", migrate("--secret-file", f"{U}=/dev/zero")),
    ("secret-file-loose", migrate("--secret-file", lambda t: f"{U}={_key(t, 0o644)}")),
    ("secret-file-missing", migrate("--secret-file", lambda t: f"{U}={t}/absent")),
    ("secret-file-no-equals", migrate("--secret-file", "nope")),
    ("secret-file-bad-uuid", migrate("--secret-file", "not-a-uuid=/k")),
    ("secret-dir-loose", migrate("--secret-dir", lambda t: _dir(t, 0o755))),
    ("secret-dir-loop", migrate("--secret-dir", _loop)),
    ("secret-dir-is-a-file", migrate("--secret-dir", lambda t: _key(t))),
    ("secret-stdin-bad-uuid", migrate("--secret-stdin", "../etc")),
    ("secret-stdin-twice", migrate("--secret-stdin", U, "--secret-stdin", U.replace("6", "7"))),
    ("ssh-key-loose", migrate("--ssh-key", lambda t: _key(t, 0o640))),
    # numbers
    ("timeout-nan", migrate("--timeout", "nan")),
    ("timeout-inf", migrate("--timeout", "inf")),
    ("timeout-negative", migrate("--timeout", "-1")),
    ("timeout-zero", migrate("--timeout", "0")),
    ("timeout-not-a-number", migrate("--timeout", "soon")),
    ("stall-timeout-nan", migrate("--stall-timeout", "nan")),
    ("stall-timeout-negative", migrate("--stall-timeout", "-5")),
    ("retry-max-seconds-negative", migrate("--retry-max-seconds", "-1")),
    ("retry-max-seconds-nan", migrate("--retry-max-seconds", "nan")),
    ("retries-zero", migrate("--retries", "0")),
    ("retries-negative", migrate("--retries", "-3")),
    ("bandwidth-beyond-libvirt", migrate("--bandwidth", "99999999999999999999999")),
    ("bandwidth-just-beyond-libvirt", migrate("--bandwidth", str((2**63 - 1) // 2**20 + 1))),
    ("bandwidth-zero", migrate("--bandwidth", "0")),
    ("bandwidth-negative", migrate("--bandwidth", "-5")),
    ("parallel-connections-zero", migrate("--parallel-connections", "0")),
    ("parallel-connections-huge", migrate("--parallel-connections", "100000")),
    ("zlib-without-parallel", migrate("--compression", "zlib")),
    ("ssh-timeout-nan", migrate("--ssh-timeout", "nan")),
    ("ssh-port-zero", migrate("--ssh-port", "0")),
    ("ssh-port-huge", migrate("--ssh-port", "70000")),
    # domains and check ids
    ("domain-empty", migrate(domain="")),
    ("domain-blank", migrate(domain="   ")),
    ("domain-newline", migrate(domain="vm\n1")),
    ("skip-unknown", migrate("--skip", "NOPE")),
    ("waive-unknown", migrate("--waive", "NOPE")),
    ("dest-private-bad", migrate("--dest-private", "maybe")),
    ("unknown-option", migrate("--bogus")),
    ("journal-symlink", lambda t: migrate()(t)[:-4] + ["--journal", str(_planted(t)), "--lock-dir", str(t / "locks")]),
    # evacuate
    ("evac-skip-unknown", evacuate("--skip", "NOPE")),
    ("evac-dry-skip-unknown", evacuate("--dry-run", "--skip", "NOPE")),
    ("evac-dry-skip-transport-rule", evacuate("--dry-run", "--skip", "SECRET-PLAINTEXT-TRANSPORT")),
    ("evac-waive-transport-rule", evacuate("--waive", "SECRET-PLAINTEXT-TRANSPORT")),
    ("evac-max-duration-nan", evacuate("--max-duration", "nan")),
    ("evac-max-duration-negative", evacuate("--max-duration", "-1")),
    ("evac-parallel-zero", evacuate("--parallel", "0")),
    ("evac-per-destination-negative", evacuate("--per-destination", "-1")),
    ("evac-max-memory-junk", evacuate("--max-memory", "junk")),
    ("evac-max-memory-not-a-destination", evacuate("--max-memory", "qemu+tls://other.invalid/system=10")),
    ("evac-max-memory-huge", evacuate("--max-memory", f"{DST}=99999999999999999999999")),
    ("evac-destination-twice", evacuate(dsts=(DST, DST))),
    ("evac-destination-is-source", evacuate(dsts=(SRC,))),
    ("evac-dry-loopback-destination", evacuate("--dry-run", dsts=("qemu+tcp://127.0.0.1/system",))),
    ("evac-report-missing-dir", evacuate("--report", lambda t: t / "missing" / "r.json")),
    ("evac-report-symlink", evacuate("--report", _planted)),
    ("evac-dry-report-symlink", evacuate("--dry-run", "--report", _planted)),
    ("evac-timeout-nan", evacuate("--timeout", "nan")),
    ("evac-bandwidth-huge", evacuate("--bandwidth", "99999999999999999999999")),
    ("evac-secret-command-unclosed", evacuate("--secret-command", "helper 'x")),
    ("evac-src-unclosed-ipv6", evacuate(src="qemu+tcp://[::1/system")),
    # check / secrets
    ("check-skip-unknown", command("check", "--skip", "NOPE")),
    ("check-skip-transport-rule", command("check", "--skip", "SECRET-PLAINTEXT-TRANSPORT")),
    ("check-domain-empty", command("check", domain="")),
    ("check-loopback-destination", command("check", dst="qemu+tcp://localhost/system")),
    ("check-secret-file-loop", lambda t: command("check", "--secret-file", f"{U}={_loop(t)}/x")(t)),
    ("secrets-bad-uri", command("secrets", src="qemu+tcp://[::1/system")),
    ("secrets-domain-empty", command("secrets", domain="")),
    ("secrets-loopback-destination", command("secrets", dst="qemu+unix:///system")),
]


@pytest.fixture
def no_connections(monkeypatch):
    """Recorders in place of every call that would open a libvirt or SSH connection."""
    calls: list[tuple[str, tuple]] = []
    for name in ("open", "openAuth", "openReadOnly"):
        monkeypatch.setattr(libvirt, name, lambda *a, _n=name, **k: calls.append((_n, a)))
    try:
        import paramiko
        monkeypatch.setattr(paramiko.SSHClient, "connect", lambda self, *a, **k: calls.append(("ssh", a)))
    except ImportError:  # pragma: no cover
        pass
    return calls


def test_at_least_forty_rows():
    assert len(ROWS) >= 40
    assert len({name for name, _ in ROWS}) == len(ROWS)


@pytest.mark.parametrize("args", [a for _, a in ROWS], ids=[n for n, _ in ROWS])
def test_hostile_input_is_one_line_exit_2_before_any_connection(args, tmp_path, capsys, no_connections):
    work = tmp_path / "w"
    work.mkdir(mode=0o700)
    argv = args(work)
    before = sorted(p.name for p in work.iterdir())

    code = main(argv)

    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("migcoord: error: "), err
    assert "Traceback" not in err and out == ""
    assert no_connections == []
    assert sorted(p.name for p in work.iterdir()) == before  # nothing written (journal, locks, report)
    if (work / "victim").exists():
        assert (work / "victim").read_text() == "untouched"
