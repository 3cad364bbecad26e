"""The operator's OpenSSH setup on the real lab: one lab host's sshd is the jump host to another,
named in an ssh_config with a Host alias, HostName, User, IdentityFile and ProxyJump, and host keys
checked strictly against a *hashed* known_hosts. The target's HostName ("dst") resolves only inside
the lab hosts (their /etc/hosts), not here: a successful connection went through the jump host."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from coordinator.core.errors import BadInput
from coordinator.ssh.runner import SshConfig, SshRunner


@pytest.fixture
def jump_setup(lab, tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    with pytest.raises(OSError):
        socket.getaddrinfo("dst", 22)  # precondition: only the jump host can resolve it
    s, hosts = lab.env["ssh"], lab.env["hosts"]
    kh = tmp_path / "known_hosts"
    shutil.copy(s["known_hosts"], kh)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(kh)], check=True, capture_output=True)
    (tmp_path / "known_hosts.old").unlink()
    assert all(line.startswith("|1|") for line in kh.read_text().splitlines() if line)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"""
Host jumpbox {hosts['src']['addr']}
    HostName {hosts['src']['addr']}
    User {s['user']}
    IdentityFile {s['key']}
Host hv2 {hosts['dst']['addr']}
    HostName dst
    User {s['user']}
    IdentityFile {s['key']}
    ProxyJump jumpbox
""")
    return cfg, kh


def test_runner_reaches_a_host_through_a_jump_host(jump_setup):
    cfg, kh = jump_setup
    with SshRunner("hv2", SshConfig(ssh_config=cfg, known_hosts=kh, connect_timeout=20)) as r:
        res = r.run("hostname")
        assert r.where.endswith("via jumpbox")
    assert res.ok and res.stdout.strip() == "dst"


def test_host_keys_stay_strict_through_the_jump(jump_setup, lab, tmp_path):
    cfg, kh = jump_setup
    only_jump = tmp_path / "known_hosts_jump_only"
    subprocess.run(["ssh-keygen", "-q", "-R", "dst", "-f", str(kh)], check=True, capture_output=True)
    shutil.copy(kh, only_jump)
    with pytest.raises(BadInput, match="SSH host key of dst port 22 is not in"), \
            SshRunner("hv2", SshConfig(ssh_config=cfg, known_hosts=only_jump, connect_timeout=20)) as r:
        r.run("true")
    assert only_jump.read_bytes() == kh.read_bytes()  # never written


def test_ssh_checks_go_through_the_jump_host(jump_setup, clean, name, migcoord):
    cfg, kh = jump_setup
    lab = clean
    lab.vm(name, on="src")
    r = migcoord("check", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json", "--ssh",
                 "--ssh-config", str(cfg), "--ssh-known-hosts", str(kh))
    assert r.returncode == 0, r.stderr_text + r.stdout_text
    rep = json.loads(r.stdout)
    ssh = {(f["check_id"], f["status"]) for f in rep["findings"] if f["transport"] == "ssh"}
    assert ("SWTPM-MISSING", "pass") in ssh and ("TPM-STATE-SPACE", "pass") in ssh
    assert not any(status in ("error", "skipped") for _, status in ssh), ssh


def test_runner_reaches_a_host_through_a_proxy_command(jump_setup, lab, tmp_path):
    """ProxyCommand (here OpenSSH's own ``ssh -W`` through the jump host, strict host keys)."""
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    _, kh = jump_setup
    s, src = lab.env["ssh"], lab.env["hosts"]["src"]["addr"]
    proxy = (f"ssh -F /dev/null -i {s['key']} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
             f"-o UserKnownHostsFile={s['known_hosts']} -W %h:%p {s['user']}@{src}")
    cfg = tmp_path / "ssh_config_pc"
    cfg.write_text(f"""
Host hv2pc
    HostName dst
    User {s['user']}
    IdentityFile {s['key']}
    ProxyCommand {proxy}
""")
    with SshRunner("hv2pc", SshConfig(ssh_config=cfg, known_hosts=kh, connect_timeout=20)) as r:
        res = r.run("hostname")
        assert r.where.endswith("via ProxyCommand")
    assert res.ok and res.stdout.strip() == "dst"
