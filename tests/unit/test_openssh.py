"""ssh/openssh: the operator's ~/.ssh/config applied to the SSH checks' route (tables)."""
from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from coordinator.core.errors import BadInput
from coordinator.ssh import openssh
from coordinator.ssh.runner import SshConfig, SshRunner, runner_for

D = SshConfig()
CONFIG = """
Host hv2
    HostName hv2.mgmt.example
    User ops
    Port 2222
    IdentityFile {key}
    IdentityFile {missing}
    ProxyJump bastion.example,ops@inner:2200
Host hv3
    HostName 10.1.2.3
    ProxyCommand /usr/bin/nc -X connect -x proxy:3128 %h %p
Host hv4
    ProxyJump none
    ProxyCommand none
    UserKnownHostsFile {kh} /etc/ssh/other
Host *
    User fallback
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    key = tmp_path / "id_hv2"
    key.write_text("k")
    key.chmod(0o600)
    p = tmp_path / "ssh_config"
    p.write_text(CONFIG.format(key=key, missing=tmp_path / "absent", kh=tmp_path / "kh"))
    return p


def _route(cfg, host, **kw):
    args = dict(user=D.user, port=D.port, key_file=None, known_hosts=D.known_hosts, ssh_config=cfg,
                defaults=(D.user, D.port, D.known_hosts))
    args.update(kw)
    defaults, jump = args.pop("defaults"), args.pop("jump", None)
    return openssh.route(paramiko, host, openssh.Asked(**args), defaults, jump)


def test_alias_hostname_user_port_identity_and_jumps(cfg, tmp_path):
    r = _route(cfg, "hv2")
    assert (r.hostname, r.user, r.port) == ("hv2.mgmt.example", "ops", 2222)
    assert r.key_files == (tmp_path / "id_hv2",)  # a missing IdentityFile is skipped, as ssh does
    assert r.proxy_jump == ("bastion.example", "ops@inner:2200") and r.proxy_command is None


def test_proxy_command_tokens_are_expanded(cfg):
    r = _route(cfg, "hv3")
    assert r.proxy_command == "/usr/bin/nc -X connect -x proxy:3128 10.1.2.3 22" and r.user == "fallback"


def test_none_disables_and_known_hosts_file_is_taken(cfg, tmp_path):
    r = _route(cfg, "hv4")
    assert r.proxy_jump == () and r.proxy_command is None and r.known_hosts == tmp_path / "kh"


def test_given_values_win_over_the_file(cfg, tmp_path):
    r = _route(cfg, "hv2", user="admin", port=2022, key_file=tmp_path / "k", known_hosts=tmp_path / "mine")
    assert (r.user, r.port, r.key_files, r.known_hosts) == ("admin", 2022, (), tmp_path / "mine")


def test_hops_given_replace_the_hosts_own_proxyjump(cfg):
    assert _route(cfg, "hv2", jump=()).proxy_jump == ()


def test_no_file_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(openssh, "DEFAULT_SSH_CONFIG", tmp_path / "nope")
    r = _route(None, "hv2")
    assert (r.hostname, r.user, r.port, r.proxy_jump) == ("hv2", "root", 22, ())


def test_the_default_file_is_used_when_present(cfg, monkeypatch):
    monkeypatch.setattr(openssh, "DEFAULT_SSH_CONFIG", cfg)
    assert _route(None, "hv2").hostname == "hv2.mgmt.example"


def test_a_named_file_must_exist(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        _route(tmp_path / "nope", "hv2")


@pytest.mark.parametrize("hop, expected", [
    ("bastion", (None, "bastion", None)),
    ("ops@bastion:2200", ("ops", "bastion", 2200)),
    ("ssh://ops@bastion:2200", ("ops", "bastion", 2200)),
    ("[2001:db8::1]:2200", (None, "2001:db8::1", 2200)),
    ("a@b@c", ("a@b", "c", None)),
])
def test_parse_hop(hop, expected):
    assert openssh.parse_hop(hop) == expected


@pytest.mark.parametrize("hop", ["", "ops@", "h:port"])
def test_malformed_jump_hops_are_bad_input(hop):
    with pytest.raises(BadInput):
        openssh.parse_hop(hop)


def test_runner_for_a_qemu_ssh_uri_follows_the_alias(cfg, tmp_path):
    r = runner_for("qemu+ssh://hv2/system", SshConfig(ssh_config=cfg))
    assert isinstance(r, SshRunner)
    assert r.route.hostname == "hv2.mgmt.example" and r.where == "ops@hv2:2222 via bastion.example,ops@inner:2200"


def test_a_loose_identity_file_is_refused_before_connecting(cfg, tmp_path):
    (tmp_path / "id_hv2").chmod(0o644)
    with pytest.raises(BadInput, match="loose permissions"):
        SshRunner("hv2", SshConfig(ssh_config=cfg))
