"""The transport rule for qemu+ssh:// judges what the operator's OpenSSH client config makes of the
connection (issue #21): libvirt runs ``ssh [-p P] [-l U] -T -e none -- HOST ...``, which applies
``~/.ssh/config``; the rule asks ``ssh -G`` with the same arguments.

The real ``ssh`` is used. ssh(1) takes ``~`` from the password database, so each test puts a
wrapper named ``ssh`` first on PATH that adds ``-F <the test's config>`` — the product code runs
``ssh`` from PATH exactly as libvirt's virCommandNew("ssh") does."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coordinator.core.errors import Blocked
from coordinator.core.uris import ssh_client_args, uri_facts
from coordinator.ssh.openssh import find_setting
from coordinator.steps.transport import check_transport, values_may_cross

SSH = shutil.which("ssh")
pytestmark = pytest.mark.skipif(SSH is None, reason="no OpenSSH client on this machine")


@pytest.fixture
def ssh_config(tmp_path: Path, monkeypatch):
    """Write the OpenSSH client config the wrapped ``ssh`` reads; returns its path."""
    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {SSH} -F {cfg} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return cfg


def refusal(uri: str) -> str:
    with pytest.raises(Blocked) as ei:
        check_transport("qemu:///system", uri, allow_plaintext=False)
    assert ei.value.data["check_id"] == "SECRET-PLAINTEXT-TRANSPORT"
    return str(ei.value)


@pytest.mark.parametrize("config, named", [
    ("Host hv2.invalid\n  StrictHostKeyChecking no\n", "StrictHostKeyChecking false"),
    ("Host hv2.invalid\n  StrictHostKeyChecking=off\n", "StrictHostKeyChecking false"),
    ("Host *.invalid\n  StrictHostKeyChecking accept-new\n", "StrictHostKeyChecking accept-new"),
    ("Host hv2.invalid\n  UserKnownHostsFile /dev/null\n", "UserKnownHostsFile /dev/null"),
    ("Match host hv2.invalid\n  StrictHostKeyChecking no\n", "StrictHostKeyChecking false"),
])
def test_openssh_config_that_skips_host_key_checks_is_refused(ssh_config, config, named):
    ssh_config.write_text(config)
    msg = refusal("qemu+ssh://hv2.invalid/system")
    assert named in msg and "OpenSSH client config" in msg
    assert not values_may_cross("qemu:///system", "qemu+ssh://hv2.invalid/system", allow_plaintext=False)
    check_transport("qemu+ssh://hv2.invalid/system", allow_plaintext=True)  # the one override


def test_the_config_is_resolved_for_the_user_and_port_libvirt_passes(ssh_config):
    ssh_config.write_text("Match user ops\n  StrictHostKeyChecking no\nHost *\n  Port 22\n")
    check_transport("qemu+ssh://root@hv2.invalid/system", allow_plaintext=False)
    assert "StrictHostKeyChecking" in refusal("qemu+ssh://ops@hv2.invalid:2222/system")
    assert ssh_client_args(uri_facts("qemu+ssh://ops@hv2.invalid:2222/system?keyfile=/k&no_tty=1")) == (
        "-p", "2222", "-l", "ops", "-i", "/k", "-T", "-e", "none", "-o", "BatchMode=yes", "--", "hv2.invalid")


@pytest.mark.parametrize("config", [
    "",
    "Host hv2.invalid\n  StrictHostKeyChecking yes\n  UserKnownHostsFile /dev/null\n",  # global file only
    "Host hv2.invalid\n  ProxyJump jump.invalid\n",          # the SSH session stays end to end
    "Host hv2.invalid\n  ProxyCommand nc %h %p\n",
    "Host other.invalid\n  StrictHostKeyChecking no\n",
])
def test_openssh_config_that_keeps_host_keys_checked_passes(ssh_config, config):
    ssh_config.write_text(config)
    check_transport("qemu:///system", "qemu+ssh://hv2.invalid/system", allow_plaintext=False)


@pytest.mark.parametrize("config", [
    "Host localhost\n  HostName hv9.invalid\n  StrictHostKeyChecking no\n",
    "Host 127.0.0.1\n  ProxyCommand nc hv9.invalid 22\n  StrictHostKeyChecking no\n",
])
def test_a_loopback_ssh_uri_the_config_sends_elsewhere_is_judged_as_remote(ssh_config, config):
    host = config.split()[1]
    ssh_config.write_text(config)
    assert "StrictHostKeyChecking" in refusal(f"qemu+ssh://{host}/system")
    ssh_config.write_text(config.replace("  StrictHostKeyChecking no\n", ""))
    assert "no_verify" in refusal(f"qemu+ssh://{host}/system?no_verify=1")


def test_a_loopback_ssh_uri_that_stays_here_is_exempt(ssh_config):
    ssh_config.write_text("Host 127.0.0.1\n  StrictHostKeyChecking no\n")
    check_transport("qemu+ssh://127.0.0.1/system?no_verify=1", allow_plaintext=False)


def test_a_config_ssh_cannot_read_is_refused(ssh_config):
    ssh_config.write_text("NoSuchOption yes\n")
    assert "ssh -G failed" in refusal("qemu+ssh://hv2.invalid/system")


def test_no_ssh_client_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "no ssh client" in refusal("qemu+ssh://hv2.invalid/system")


def test_other_transports_do_not_run_ssh(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh at all
    # libssh/libssh2: libvirt checks the key itself against known_hosts (known_hosts_verify=normal)
    # and, with no auth callback (virConnectOpen), refuses an unknown one whatever ~/.ssh/config says.
    check_transport("qemu+libssh2://hv2.invalid/system", "qemu+libssh://hv3.invalid/system",
                    "qemu+tls://hv4.invalid/system", allow_plaintext=False)


def test_the_refusal_names_the_config_line(tmp_path):
    main = tmp_path / "config"
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-lab.conf").write_text("Host *\n    # StrictHostKeyChecking no\n"
                                                     "    StrictHostKeyChecking=no\n")
    main.write_text("Include conf.d/*.conf\nHost a\n  StrictHostKeyChecking yes\n")
    assert find_setting("StrictHostKeyChecking", ("no", "off", "false"), [main]) == \
        f"{tmp_path / 'conf.d' / '10-lab.conf'}:3"
    assert find_setting("UserKnownHostsFile", ("/dev/null",), [main]) is None
