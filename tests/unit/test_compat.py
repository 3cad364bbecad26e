"""The code works with Debian 12's old libraries (paramiko 2.12, tenacity 8.2.1) and today's:
scripts/test-debian-floor runs this suite over Debian's packages, scripts/test over the venv's."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from coordinator.core.errors import BadInput
from coordinator.ssh.runner import _connect_kwargs, _load_key
from coordinator.steps.retry import RetryPolicy, build_retrying

needs_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")


@needs_keygen
@pytest.mark.parametrize("kind, name", [("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256"),
                                        ("rsa", "ssh-rsa")])
def test_openssh_private_keys_load_whatever_the_paramiko(tmp_path: Path, kind, name):
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
    assert _load_key(key).get_name() == name


@needs_keygen
def test_a_passphrase_protected_key_is_refused_clearly(tmp_path: Path):
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(key)], check=True)
    with pytest.raises(BadInput, match="passphrase-protected"):
        _load_key(key)


def test_connect_timeouts_are_ones_this_paramiko_accepts():
    import inspect

    import paramiko
    accepted = inspect.signature(paramiko.SSHClient.connect).parameters
    kw = _connect_kwargs(7.0)
    assert set(kw) <= set(accepted) and kw["timeout"] == kw["auth_timeout"] == 7.0


def test_retry_backoff_builds_and_waits_with_this_tenacity():
    slept: list[float] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            from coordinator.core.errors import HostUnreachable
            raise HostUnreachable("down", transient=True)
        return "ok"

    r = build_retrying(RetryPolicy(attempts=4, initial_wait=2.0, max_wait=3.0), sleep=slept.append)
    assert r(flaky) == "ok" and len(slept) == 2
    assert all(0 < s <= 3.0 for s in slept) and slept[0] >= 2.0
