"""coordinator.steps.keys: --secret-file parsing and the KeyRing's sources (key files refused before reading)."""
from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import pytest

from coordinator.core.errors import BadInput, SecretUnavailable
from coordinator.core.model import SecretValue
from coordinator.steps.keys import KeyRing, ValueSource, parse_file_option

A = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
B = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
C = "718c71bd-67b5-4a2b-87ec-a24e8ca200dc"


def key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


# -- parse_file_option -----------------------------------------------------------------------

@pytest.mark.parametrize("opt, path", [
    (f"{A}=/k/a", "/k/a"),
    (f"{A.upper()}=/k/a", "/k/a"),
    (f"{A.replace('-', '')}=rel/a=b", "rel/a=b"),
])
def test_parse_file_option(opt, path):
    assert parse_file_option(opt) == ValueSource("file", path, A)


@pytest.mark.parametrize("opt", ["nope", f"{A}=", "not-a-uuid=/k/a", f"{A[:-1]}=/k/a", "=/k/a"])
def test_parse_file_option_rejects(opt):
    with pytest.raises(BadInput):
        parse_file_option(opt)


# -- KeyRing: file and dir -------------------------------------------------------------------

def test_keyring_sources_in_given_order(tmp_path):
    fa = key(tmp_path / "a.key", b"\x00from-file\xff")
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    key(d / A, b"from-dir-a")
    key(d / B, b"\xff\x00\x01B")
    ring = KeyRing([ValueSource("file", str(fa), A), ValueSource("dir", str(d))])
    va, vb = ring.value_for(A), ring.value_for(B)
    assert (va.data, va.source) == (b"\x00from-file\xff", f"file:{fa}")
    assert (vb.data, vb.source) == (b"\xff\x00\x01B", f"dir:{d}")
    assert ring.value_for(C) is None


def test_keyring_trailing_newline_kept_and_warned(tmp_path, caplog):
    value = b"hunter2-not-for-logs\n"
    f = key(tmp_path / "k", value)
    ring = KeyRing([ValueSource("file", str(f), A)])
    with caplog.at_level(logging.WARNING, logger="migcoord"):
        assert ring.value_for(A).data == value
    warnings = [r for r in caplog.records if r.name == "migcoord" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert A in warnings[0].getMessage()
    assert "hunter2" not in caplog.text


def test_keyring_refuses_loose_file_before_reading(tmp_path, monkeypatch):
    f = key(tmp_path / "k", b"v", 0o644)
    opened = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a))
    with pytest.raises(BadInput, match="loose permissions"):
        KeyRing([ValueSource("file", str(f), A)])
    assert opened == []


def test_keyring_refuses_missing_dir(tmp_path):
    with pytest.raises(BadInput):
        KeyRing([ValueSource("dir", str(tmp_path / "absent"))])


# -- KeyRing: command ------------------------------------------------------------------------

def script(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "helper.sh"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o700)
    return p


def test_keyring_command_substitutes_uuid(tmp_path):
    log = tmp_path / "calls"
    s = script(tmp_path, f'echo "$@" >> {log}\nif [ "$2" = "{A}" ]; then printf "val-$2"; fi\n')
    ring = KeyRing([ValueSource("command", f"{s} --id {{uuid}}")])
    v = ring.value_for(A)
    assert v.data == f"val-{A}".encode()
    assert v.source == f"command:{s} --id {{uuid}}"
    assert ring.value_for(B) is None  # helper printed nothing for B
    assert log.read_text().splitlines() == [f"--id {A}", f"--id {B}"]


def test_keyring_command_failure_hides_stderr(tmp_path):
    s = script(tmp_path, 'echo "LEAKED-secret-text" >&2\nexit 3\n')
    with pytest.raises(SecretUnavailable) as ei:
        KeyRing([ValueSource("command", f"{s} {{uuid}}")]).value_for(A)
    msg = str(ei.value)
    assert "exited with 3" in msg and A in msg
    assert "LEAKED" not in msg


def test_keyring_command_not_found(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        KeyRing([ValueSource("command", f"{tmp_path}/no-such-helper {{uuid}}")]).value_for(A)


def test_keyring_empty_command_rejected():
    with pytest.raises(BadInput):
        KeyRing([ValueSource("command", "  ")])


# -- KeyRing: stdin --------------------------------------------------------------------------

def test_keyring_stdin_for_one_uuid():
    stdin = io.BytesIO(b"\x00stdin-value\n")
    ring = KeyRing([ValueSource("stdin", "-", A)], stdin=stdin)
    assert ring.value_for(B) is None
    v = ring.value_for(A)
    assert (v.data, v.source) == (b"\x00stdin-value\n", "stdin")
    assert ring.value_for(A) is v  # read once, cached


def test_keyring_two_stdin_sources_rejected():
    with pytest.raises(BadInput, match="stdin"):
        KeyRing([ValueSource("stdin", "-", A), ValueSource("stdin", "-", B)], stdin=io.BytesIO(b"x"))


# -- SecretValue -----------------------------------------------------------------------------

def test_secret_value_never_shows_bytes():
    v = SecretValue(data=b"TOPSECRET", source="file:/k")
    for text in (repr(v), str(v), f"{v}", repr([v])):
        assert "TOPSECRET" not in text
    assert "file:/k" in str(v)


def test_secret_value_cannot_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(SecretValue(data=b"TOPSECRET", source="stdin"))



def test_keyring_stdin_too_large_is_refused_not_truncated():
    ring = KeyRing([ValueSource("stdin", "-", A)], stdin=io.BytesIO(b"x" * (2**20 + 10)))
    with pytest.raises(BadInput, match="more than"):
        ring.value_for(A)


def test_keyring_command_not_executable(tmp_path):
    helper = tmp_path / "helper"
    helper.write_text("#!/bin/sh\necho x\n")
    helper.chmod(0o600)
    with pytest.raises(BadInput, match="cannot be run"):
        KeyRing([ValueSource("command", str(helper))]).value_for(A)
