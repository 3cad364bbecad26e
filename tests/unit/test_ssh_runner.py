"""coordinator/remote.py and the pure parsers of checks/ssh.py: tables of cases, no network."""
from __future__ import annotations

import shlex
import socket
from pathlib import Path

import pytest

from coordinator.core.errors import BadInput
from coordinator.ssh.runner import CommandResult, LocalRunner, SshConfig, SshRunner, format_command, runner_for
                                ssh_target)


SSH_IDS = ("SWTPM-MISSING", "SWTPM-CAPABILITIES", "SWTPM-VERSION-OLDER", "TPM-STATE-SPACE",
           "SECRET-AT-REST-UNENCRYPTED")


@pytest.fixture(scope="module")
def ssh():
    """checks.ssh, whose checks the checks package registers."""
    import checks.ssh as mod
    from checks.registry import REGISTRY
    assert set(SSH_IDS) <= set(REGISTRY.checks)
    return mod


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


# ------------------------------------------------------------------ URIs → runners

@pytest.mark.parametrize("uri,expected", [
    ("qemu:///system", None),
    ("qemu:///session", None),
    ("qemu+unix:///system", None),
    ("qemu+ssh://hv2/system", ("hv2", None, None)),
    ("qemu+ssh://admin@hv2:2222/system", ("hv2", "admin", 2222)),
    ("qemu+libssh2://root@127.0.0.52/system?keyfile=/k&known_hosts=/kh", ("127.0.0.52", "root", None)),
    ("qemu+tcp://127.0.0.52/system", ("127.0.0.52", None, None)),
    ("qemu+tcp://hv2:16509/system", ("hv2", None, None)),   # libvirt's port, not SSH's
    ("qemu+tls://bob@hv3/system", ("hv3", None, None)),      # not an SSH user either
    ("qemu+ssh://[fd00::5]:2200/system", ("fd00::5", None, 2200)),
])
def test_ssh_target(uri, expected):
    assert ssh_target(uri) == expected


def test_ssh_target_bad_uri():
    with pytest.raises(BadInput):
        ssh_target("hv2")


def test_runner_for(tmp_path: Path):
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


# ------------------------------------------------------------------ parsers of checks/ssh.py

CAPS_071 = ('{ "type": "swtpm", "features": [ "tpm-1.2", "tpm-2.0", "tpm-send-command-header", '
            '"flags-opt-startup", "cmdarg-seccomp", "cmdarg-key-fd", "cmdarg-pwd-fd", "cmdarg-print-states", '
            '"nvram-backend-dir", "nvram-backend-file" ], "version": "0.7.1" }')
CAPS_090 = ('{ "type": "swtpm", "features": [ "tpm-2.0", "cmdarg-pwd-fd", "cmdarg-migration" ], '
            '"version": "0.9.0" }')
CAPS_OLD = '{ "type": "swtpm", "features": [ "cmdarg-seccomp", "cmdarg-key-fd" ] }'


@pytest.mark.parametrize("text,tpm_versions,shared,missing", [
    (CAPS_071, ("2.0",), False, ()),
    (CAPS_071, (None,), False, ()),
    (CAPS_071, ("1.2",), False, ()),
    (CAPS_071, ("2.0",), True, ("cmdarg-migration",)),
    (CAPS_090, ("2.0",), True, ()),
    (CAPS_090, ("1.2",), False, ("tpm-1.2",)),
    (CAPS_OLD, ("2.0",), False, ("tpm-2.0", "cmdarg-pwd-fd")),
])
def test_capabilities(text, tpm_versions, shared, missing, ssh):
    caps = ssh.parse_capabilities(text)
    assert ssh.missing_features(caps, ssh.required_features(tpm_versions, shared)) == missing


def test_capabilities_version_and_garbage(ssh):
    assert ssh.parse_capabilities(CAPS_071).version == "0.7.1"
    assert ssh.parse_capabilities(CAPS_OLD).version is None
    for bad in ("", "swtpm: unknown option", "[1, 2]", '{"type": "swtpm"}'):
        with pytest.raises(ValueError):
            ssh.parse_capabilities(bad)


@pytest.mark.parametrize("text,expected", [
    ("TPM emulator version 0.7.1, Copyright (c) 2014-2021 IBM Corp.", (0, 7, 1)),
    ("TPM emulator version 0.10.0, Copyright (c) 2014-2022 IBM Corp. and others", (0, 10, 0)),
    ("libvirtd (libvirt) 9.0.0", (9, 0, 0)),
    ("0.9.2-3.1+deb12u1", (0, 9, 2)),
    ("1:0.9.6-1", (0, 9, 6)),
    ("0.9.6\n", (0, 9, 6)),
    ("v0.8.2", (0, 8, 2)),
    ("no version here", None),
    ("", None),
])
def test_parse_version(text, expected, ssh):
    assert ssh.parse_version(text) == expected


@pytest.mark.parametrize("dst,src,is_older", [
    ((0, 7, 1), (0, 7, 1), False),
    ((0, 7, 0), (0, 7, 1), True),
    ((0, 10, 0), (0, 9, 9), False),   # numeric, not lexical
    ((0, 9), (0, 9, 0), False),
    ((0, 9), (0, 9, 1), True),
    ((1, 0), (0, 99, 99), False),
])
def test_older(dst, src, is_older, ssh):
    assert ssh.older(dst, src) is is_older


DF_EXT4 = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda1         41152736 12345678  26693420      32% /
"""
DF_SPACES = """Filesystem                 1024-blocks  Used Available Capacity Mounted on
//nas/tpm share                 1048576 1000000     48576      96% /mnt/tpm state
"""
DF_TMPFS = """Filesystem     1024-blocks  Used Available Capacity Mounted on
tmpfs                 1024     0      1024       0% /var/lib/libvirt/swtpm
"""
DF_NOCAP = """Filesystem 1024-blocks Used Available Capacity Mounted on
overlay 100 0 0 - /
"""


@pytest.mark.parametrize("text,expected", [
    (DF_EXT4, ("/dev/vda1", 41152736, 26693420, "/")),
    (DF_SPACES, ("//nas/tpm share", 1048576, 48576, "/mnt/tpm state")),
    (DF_TMPFS, ("tmpfs", 1024, 1024, "/var/lib/libvirt/swtpm")),
    (DF_NOCAP, ("overlay", 100, 0, "/")),
])
def test_parse_df(text, expected, ssh):
    assert ssh.parse_df(text) == ssh.DiskFree(*expected)


@pytest.mark.parametrize("text", ["", "df: /nope: No such file or directory\n",
                                  "Filesystem 1K-blocks Used Available Use% Mounted on\n"])
def test_parse_df_garbage(text, ssh):
    with pytest.raises(ValueError):
        ssh.parse_df(text)


@pytest.mark.parametrize("fs_type,shared", [
    ("nfs", True), ("nfs4", True), ("ceph", True), ("gfs/gfs2", True), ("ocfs2", True), ("smb2", True),
    ("cifs", True), ("fuse.glusterfs", True), ("lustre", True),
    ("ext2/ext3", False), ("xfs", False), ("tmpfs", False), ("overlayfs", False), ("btrfs", False),
])
def test_is_shared_fs(fs_type, shared, ssh):
    assert ssh.is_shared_fs(fs_type) is shared


@pytest.mark.parametrize("xml,expected", [
    (None, "/var/lib/libvirt/swtpm"),
    ("<domain><devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm></devices></domain>",
     "/var/lib/libvirt/swtpm"),
    ("<domain><devices><tpm><backend type='emulator'><source type='dir' path='/shared/tpm/vm1'/>"
     "</backend></tpm></devices></domain>", "/shared/tpm/vm1"),
    ("<domain><devices><tpm><backend type='emulator'><source type='file' path='/shared/tpm/vm1.img'/>"
     "</backend></tpm></devices></domain>", "/shared/tpm"),
    ("<domstatus><domain><devices><tpm><backend type='emulator'><source type='dir' path='/s'/></backend>"
     "</tpm></devices></domain></domstatus>", "/s"),
    ("<not xml", "/var/lib/libvirt/swtpm"),
])
def test_tpm_state_dir(xml, expected, ssh):
    assert ssh.tpm_state_dir(xml) == expected


def test_ssh_checks_registered_with_transport_ssh(ssh):
    from checks.registry import REGISTRY
    assert set(SSH_IDS) <= set(REGISTRY.checks)
    ids = {"SWTPM-MISSING": "error", "SWTPM-CAPABILITIES": "error", "SWTPM-VERSION-OLDER": "error",
           "TPM-STATE-SPACE": "error", "SECRET-AT-REST-UNENCRYPTED": "warning"}
    for cid, sev in ids.items():
        c = REGISTRY.checks[cid]
        assert (c.transport, c.severity) == ("ssh", sev) and c.hint and c.summary


def test_ssh_checks_skip_without_runner(ssh):
    from types import SimpleNamespace

    from coordinator.core.domfacts import TpmFacts
    facts = SimpleNamespace(tpms=(TpmFacts("tpm-crb", "emulator", "2.0"),))
    t = SimpleNamespace(facts=facts, xmls=("<domain/>",), name="vm")
    ctx = SimpleNamespace(runner=lambda role: None, targets=(t,), dst_uri="qemu+tcp://hv2/system")
    results = [ssh.swtpm_missing(ctx), ssh.swtpm_version_older(ctx), ssh.swtpm_capabilities(ctx, t),
               ssh.tpm_state_space(ctx, t), ssh.secret_at_rest(ctx, t)]
    assert {(r.status, r.message) for r in results} == {("skipped", "SSH not configured")}
