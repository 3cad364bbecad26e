"""coordinator.cli.main: every error becomes one line and the right exit code (no traceback)."""
from __future__ import annotations

import importlib
import os
import signal

import pytest

from coordinator.core.errors import HostError, Interrupted, MigrationFailed, Undecided

cli = importlib.import_module("coordinator.cli.main")  # the module (the package re-exports its main())

ARGV = ["check", "vm", "--from", "qemu:///system", "--to", "qemu+ssh://h/system"]


def _raising(exc: BaseException):
    def run(_args):
        raise exc
    return run


@pytest.mark.parametrize("exc, code", [
    (HostError("Domain not found [VIR_ERR_NO_DOMAIN/VIR_FROM_QEMU]"), 1),
    (MigrationFailed("provisioning secrets on X failed: ..."), 3),
    (Undecided("UNKNOWN: success depends on ...; nothing was changed", hint="pass --ssh, or --accept-unknown"), 6),
    (Interrupted("interrupted: the migration of vm was aborted"), 130),
    (KeyboardInterrupt(), 130),
])
def test_errors_are_one_line_with_their_exit_code(monkeypatch, capsys, exc, code):
    monkeypatch.setitem(cli.COMMANDS, "check", _raising(exc))
    assert cli.main(ARGV) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sigterm_exits_143(monkeypatch, capsys):
    def run(_args):
        os.kill(os.getpid(), signal.SIGTERM)  # handled like Ctrl-C by main's handler
        raise AssertionError("the handler should have interrupted")
    monkeypatch.setitem(cli.COMMANDS, "check", run)
    assert cli.main(ARGV) == 143
    assert signal.getsignal(signal.SIGTERM) is not None  # restored afterwards


def test_command_returning_130_after_sigterm_is_143(monkeypatch):
    def run(_args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            return 130  # e.g. evacuate: wrote its report, then says "interrupted"
        return 0
    monkeypatch.setitem(cli.COMMANDS, "check", run)
    assert cli.main(ARGV) == 143


def test_exit_6_is_documented_wherever_exit_codes_are():
    from pathlib import Path

    from coordinator.cli import cmd_check
    from coordinator.core import metrics
    assert Undecided.exit_code == 6
    assert "\n  6  UNKNOWN" in cli.EXIT_CODES and "\n  6  UNKNOWN" in cmd_check.EXIT_HELP
    assert "6 refused" in metrics.__doc__.replace("\n", " ").replace("  ", " ") or "6 a decisive" in metrics.__doc__
    readme = (Path(cli.__file__).parents[2] / "README.md").read_text()
    assert "\n| 6 | " in readme
