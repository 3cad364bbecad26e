"""SSH keys named by ssh_config's IdentityFile (and the default ~/.ssh/id_* keys) are opened once under
the same rules as --ssh-key — O_NOFOLLOW, a regular file, owner-only, owned by us or root, checked on
the descriptor — and handed to paramiko as key objects: paramiko never opens a key by path
(issue #21). No network: paramiko's connect is replaced by a recorder."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from coordinator.core.errors import BadInput
from coordinator.ssh.runner import SshConfig, SshRunner

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="no ssh-keygen")


def keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name, "-f", str(path)],
                   check=True)
    path.chmod(0o600)
    return path


def public_blob(path: Path) -> str:
    return Path(f"{path}.pub").read_text().split()[1]


class Recorder:
    """Stands in for SSHClient.connect: records its keyword arguments, then refuses the login."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, client, hostname, **kw):
        self.calls.append(kw)
        raise paramiko.AuthenticationException("recorded")


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(paramiko.SSHClient, "connect", lambda client, hostname, **kw: rec(client, hostname, **kw))
    return rec


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return h


def runner(tmp_path: Path, config: str) -> SshRunner:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(config)
    kh = tmp_path / "known_hosts"
    kh.touch()
    return SshRunner("hv2", SshConfig(ssh_config=cfg, known_hosts=kh))


def test_identity_file_swapped_for_a_symlink_after_the_check_is_not_used(tmp_path, home, recorder):
    mine = keygen(tmp_path / "id_mine")
    other = keygen(tmp_path / "id_other")
    other.chmod(0o644)  # someone else's readable key
    r = runner(tmp_path, f"Host hv2\n  IdentityFile {mine}\n")
    mine.unlink()
    mine.symlink_to(other)  # swapped after migcoord checked it
    with pytest.raises(BadInput, match="authentication"):
        r.run("true")
    [kw] = recorder.calls
    assert not kw.get("key_filename")       # paramiko is never given a path to open
    assert kw["look_for_keys"] is False
    assert kw["pkey"].get_base64() == public_blob(tmp_path / "id_mine")  # the key as read when checked


def test_a_symlinked_identity_file_is_refused_before_connecting(tmp_path, home, recorder):
    other = keygen(tmp_path / "id_other")
    link = tmp_path / "id_link"
    link.symlink_to(other)
    with pytest.raises(BadInput, match="symbolic link"):
        runner(tmp_path, f"Host hv2\n  IdentityFile {link}\n")
    assert recorder.calls == []


@pytest.mark.parametrize("name", ["id_ed25519", "id_rsa", "id_ecdsa"])
def test_default_keys_follow_the_key_file_rules_too(tmp_path, home, recorder, name):
    other = keygen(tmp_path / "elsewhere")
    other.chmod(0o644)
    (home / ".ssh" / name).symlink_to(other)
    with pytest.raises(BadInput, match="symbolic link"):
        runner(tmp_path, "")
    assert recorder.calls == []


def test_default_key_is_handed_over_as_a_key(tmp_path, home, recorder):
    keygen(home / ".ssh" / "id_ed25519")
    with pytest.raises(BadInput):
        runner(tmp_path, "").run("true")
    [kw] = recorder.calls
    assert kw["look_for_keys"] is False and not kw.get("key_filename")
    assert kw["pkey"].get_base64() == public_blob(home / ".ssh" / "id_ed25519")


def test_a_passphrase_protected_identity_file_is_left_to_the_agent(tmp_path, home, recorder):
    locked = keygen(tmp_path / "id_locked", passphrase="pw-for-test")
    r = runner(tmp_path, f"Host hv2\n  IdentityFile {locked}\n")
    with pytest.raises(BadInput):
        r.run("true")
    [kw] = recorder.calls
    assert kw["pkey"] is None and kw["allow_agent"] is True and kw["look_for_keys"] is False


def test_every_identity_file_is_offered_in_order(tmp_path, home, monkeypatch):
    a, b = keygen(tmp_path / "id_a"), keygen(tmp_path / "id_b")
    offered: list[str] = []

    class Transport:
        authenticated = False

        def is_active(self):
            return True

        def auth_publickey(self, user, key):
            offered.append(key.get_base64())
            if key.get_base64() != public_blob(b):
                raise paramiko.AuthenticationException("no")
            self.authenticated = True
            return []

        def is_authenticated(self):
            return self.authenticated

    t = Transport()

    def connect(client, hostname, **kw):
        assert kw["allow_agent"] is False  # the agent comes after every key file
        t.auth_publickey(kw["username"], kw["pkey"])

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(paramiko.SSHClient, "get_transport", lambda self: t)
    r = runner(tmp_path, f"Host hv2\n  IdentityFile {a}\n  IdentityFile {b}\n")
    assert r._connect() is not None
    assert offered == [public_blob(a), public_blob(b)]
