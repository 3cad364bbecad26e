"""The settings file is read defensively: a FIFO never blocks, a symlink is refused, a huge or deeply
nested file is one clear error (never cut, never a traceback), and a bad value names FILE:key."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.cli.main import main
from coordinator.core.config import parse_file
from coordinator.core.errors import BadInput
from coordinator.files.configfile import MAX_BYTES, load_config_file

ROOT = Path(__file__).resolve().parents[2]
MIGRATE = ["migrate", "vm1", "--from", "qemu+tls://hv1.example/system", "--to", "qemu+tls://hv2.example/system",
           "--dry-run", "--journal", "", "--lock-dir", "/nonexistent/locks"]


def _config(tmp_path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    p = tmp_path / "c.toml"
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    p.chmod(mode)
    return p


def _run(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_a_fifo_as_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo, 0o600)
    r = subprocess.run([sys.executable, "-m", "coordinator", "--config", str(fifo), "config", "show"],
                       cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "not a regular file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_symlinked_config_is_refused_not_followed(tmp_path):
    real = _config(tmp_path, "[migration]\ntls = true\n")
    (tmp_path / "link.toml").symlink_to(real)
    with pytest.raises(BadInput, match="symbolic link"):
        load_config_file(tmp_path / "link.toml")


def test_a_directory_as_config_is_one_clear_error(tmp_path):
    with pytest.raises(BadInput, match="not a regular file"):
        load_config_file(tmp_path)


def test_deeply_nested_arrays_are_one_clear_error_not_a_recursion_error(tmp_path, capsys):
    p = _config(tmp_path, "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    rc, err = _run(capsys, "--config", str(p), "config", "show")
    assert rc == 2 and "nested too deeply" in err and str(p) in err and "Traceback" not in err


def test_a_file_over_one_mib_is_refused_not_cut(tmp_path, capsys):
    padding = ("#" * 99 + "\n") * (MAX_BYTES // 100 + 1)
    p = _config(tmp_path, padding + "[migration]\ntls = true\n")
    rc, err = _run(capsys, "--config", str(p), "config", "show", "--json")
    assert rc == 2 and "larger than" in err and str(p) in err


def test_a_file_of_exactly_one_mib_is_read_whole(tmp_path):
    tail = "[migration]\ntls = true\n"
    p = _config(tmp_path, "#" * (MAX_BYTES - len(tail) - 1) + "\n" + tail)
    assert p.stat().st_size == MAX_BYTES
    assert load_config_file(p) == {"migration": {"tls": True}}


@pytest.mark.parametrize("line, key", [
    ("timeout = nan", "migration.timeout"),
    ("timeout = inf", "migration.timeout"),
    ("stall_timeout = -nan", "migration.stall_timeout"),
    ("timeout_per_gib = inf", "migration.timeout_per_gib"),
    ("timeout = 1e12", "migration.timeout"),           # beyond the longest deadline (core.params.MAX_DEADLINE_S)
    ("bandwidth = 9223372036854775807", "migration.bandwidth"),
    ("parallel_connections = 256", "migration.parallel_connections"),
])
def test_a_bad_number_in_the_file_names_file_and_key_not_the_option(tmp_path, capsys, line, key):
    p = _config(tmp_path, f"[migration]\n{line}\n")
    rc, err = _run(capsys, "--config", str(p), *MIGRATE)
    assert rc == 2 and f"{p}:{key}" in err and "--timeout" not in err.split("(")[0]


def test_a_nan_in_the_environment_names_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MIGCOORD_MIGRATION_TIMEOUT", "nan")
    rc, err = _run(capsys, "--config", str(_config(tmp_path, "")), *MIGRATE)
    assert rc == 2 and "env:MIGCOORD_MIGRATION_TIMEOUT" in err


def test_a_port_beyond_65535_names_file_and_key(tmp_path):
    with pytest.raises(BadInput, match=r"c.toml:hosts.a.ssh.port: must be at most 65535"):
        parse_file("c.toml", {"hosts": {"a": {"uri": "qemu+ssh://a/system", "ssh": {"port": 70000}}}})
