"""cli/logs: --log-level and --syslog (a real datagram socket standing in for /dev/log)."""
from __future__ import annotations

import logging
import socket

import pytest

from coordinator.cli import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_syslog_receives_records_at_the_level(tmp_path, restore_logging):
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(5)
        logs.setup("info", syslog=True, socket_path=path)
        logging.getLogger("migcoord").debug("not this")
        logging.getLogger("migcoord").info("evacuation of hv1 started")
        msg = s.recv(4096).decode()
    assert msg.startswith("<30>migcoord[") and msg.endswith("INFO: evacuation of hv1 started\x00")  # daemon.info


def test_missing_syslog_socket_warns_and_keeps_stderr(tmp_path, capsys, restore_logging):
    logs.setup("warning", syslog=True, socket_path=str(tmp_path / "absent"))
    err = capsys.readouterr().err
    assert "--syslog:" in err and "does not exist" in err
    assert logging.getLogger().level == logging.WARNING
