"""coordinator.ssh.runner: argument quoting, the local runner, URI → runner, SSH config, and key files
refused before any network: tables of cases, no network."""
from __future__ import annotations

import shlex
import socket
from pathlib import Path

import pytest

from coordinator.core.errors import BadInput
from coordinator.ssh.runner import CommandResult, LocalRunner, SshConfig, SshRunner, format_command, runner_for


# ------------------------------------------------------------------ quoting (house rule 7)

@pytest.mark.parametrize("fmt,args,expected_argv", [
    ("echo {}", ("; rm -rf /",), ["echo", "; rm -rf /"]),
    ("echo {}", ("$(reboot)",), ["echo", "$(reboot)"]),
    ("echo {}", ("`id`",), ["echo", "`id`"]),
    ("echo {} {}", ("a b", "it's"), ["echo", "a b", "it's"]),
    ("test -f {}", ("",), ["test", "-f", ""]),
    ("df -Pk {}", ("/var/lib/libvirt/swtpm",), ["df", "-Pk", "/var/lib/libvirt/swtpm"]),
    ("printf '%s' {}", ("x\ny",), ["printf", "%s", "x\ny"]),
    ("dpkg-query -W -f '${{Version}}' {}", ("libtpms0",), ["dpkg-query", "-W", "-f", "${Version}", "libtpms0"]),
])
def test_each_argument_stays_one_word(fmt, args, expected_argv):
    assert shlex.split(format_command(fmt, *args)) == expected_argv


def test_hostile_argument_does_not_run_locally(tmp_path: Path):
    marker = tmp_path / "pwned"
    r = LocalRunner().run("echo {}", f"; touch {marker}")
    assert r.ok and r.stdout == f"; touch {marker}\n"
    assert not marker.exists()


@pytest.mark.parametrize("fmt,args", [("echo {} {}", ("one",)), ("echo {name}", ("x",))])
def test_format_mismatch_is_a_programming_error(fmt, args):
    with pytest.raises(ValueError):
        format_command(fmt, *args)


def test_non_str_argument_refused():
    with pytest.raises(TypeError):
        format_command("echo {}", 3)  # type: ignore[arg-type]


def test_local_runner_result():
    r = LocalRunner().run("printf %s {}; printf err >&2; exit 4", "out")
    assert r == CommandResult(command="printf %s out; printf err >&2; exit 4", exit_status=4, stdout="out",
                              stderr="err")
    assert not r.ok
    assert LocalRunner().run("true").ok


def test_local_uris_run_here_remote_ones_over_ssh_only_when_configured(tmp_path: Path):
    cfg = SshConfig(user="ops", port=2022, known_hosts=tmp_path / "kh")
    assert isinstance(runner_for("qemu:///system", cfg), LocalRunner)
    assert isinstance(runner_for("qemu:///system", None), LocalRunner)
    assert runner_for("qemu+tcp://hv2/system", None) is None          # SSH not configured
    r = runner_for("qemu+tcp://hv2/system", cfg)
    assert isinstance(r, SshRunner) and (r.host, r.config.user, r.config.port) == ("hv2", "ops", 2022)
    r = runner_for("qemu+ssh://root@hv3:22/system", cfg)
    assert isinstance(r, SshRunner) and (r.host, r.config.user, r.config.port) == ("hv3", "root", 22)
    assert r._client is None  # lazy: nothing opened


def test_config_defaults_and_paths():
    c = SshConfig()
    assert (c.user, c.port, c.key_file, c.connect_timeout, c.command_timeout) == ("root", 22, None, 10.0, 30.0)
    assert c.known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert SshConfig(key_file="/k", known_hosts="/kh").key_file == Path("/k")
    with pytest.raises(BadInput):
        SshConfig(port=0)


# ------------------------------------------------------------------ key file refused before any network

def _no_network(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("network used")
    monkeypatch.setattr(socket, "create_connection", boom)
    monkeypatch.setattr(socket.socket, "connect", boom)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_loose_key_file_refused_before_connecting(tmp_path: Path, monkeypatch, mode):
    _no_network(monkeypatch)
    key = tmp_path / "id"
    key.write_text("not even a key\n")
    key.chmod(mode)
    with pytest.raises(BadInput, match="loose permissions"):
        SshRunner("192.0.2.1", SshConfig(key_file=key, known_hosts=tmp_path / "kh"))


def test_missing_and_garbage_key_files(tmp_path: Path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(BadInput, match="does not exist"):
        SshRunner("192.0.2.1", SshConfig(key_file=tmp_path / "nope"))
    key = tmp_path / "id"
    key.write_text("garbage\n")
    key.chmod(0o600)
    with pytest.raises(BadInput, match="not a usable SSH private key"):
        SshRunner("192.0.2.1", SshConfig(key_file=key))


def test_missing_known_hosts_refused_before_connecting(tmp_path: Path, monkeypatch):
    _no_network(monkeypatch)
    r = SshRunner("192.0.2.1", SshConfig(known_hosts=tmp_path / "absent"))
    with pytest.raises(BadInput, match="known_hosts file .* does not exist") as e:
        r.run("true")
    assert "ssh-keyscan" in (e.value.hint or "")
