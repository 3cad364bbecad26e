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
    assert v.source == f"command:{s}"  # argv[0] only: the other tokens may be credentials
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


# -- issue #12: key files are opened once, without following symlinks, checked on the descriptor --

def test_secret_file_symlink_is_refused_not_followed(tmp_path):
    real = key(tmp_path / "real", b"v")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(BadInput, match="symbolic link"):
        KeyRing([ValueSource("file", str(link), A)])


def test_secret_file_fifo_is_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # no writer: a blocking open() would hang here forever
    with pytest.raises(BadInput, match="not a regular file"):
        KeyRing([ValueSource("file", str(fifo), A)])


def test_secret_file_device_is_refused():
    with pytest.raises(BadInput, match="not a regular file|loose permissions"):
        KeyRing([ValueSource("file", "/dev/zero", A)])


def test_secret_file_symlink_loop_and_long_path_are_one_line_bad_input(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(BadInput, match="symbolic link"):
        KeyRing([ValueSource("file", str(tmp_path / "a" / "x"), A)])
    with pytest.raises(BadInput, match="too long") as ei:
        KeyRing([ValueSource("file", "/" + "x" * 5000, A)])
    assert "\n" not in str(ei.value) and len(str(ei.value)) < 200


def test_secret_file_swapped_for_a_symlink_after_the_check_is_not_read(tmp_path):
    f = key(tmp_path / "k", b"first")
    ring = KeyRing([ValueSource("file", str(f), A)])  # checked here
    f.unlink()
    (tmp_path / "elsewhere").write_bytes(b"attacker")
    f.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match="symbolic link"):
        ring.value_for(A)


def test_secret_file_owned_by_someone_else_is_refused(tmp_path):
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    f = key(tmp_path / "k", b"v")
    os.chown(f, 12345, 12345)
    with pytest.raises(BadInput, match="owned by uid 12345"):
        KeyRing([ValueSource("file", str(f), A)])


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701])
def test_secret_dir_must_be_owner_only(tmp_path, mode):
    d = tmp_path / "keys"
    d.mkdir()
    d.chmod(mode)
    with pytest.raises(BadInput, match="loose permissions"):
        KeyRing([ValueSource("dir", str(d))])


def test_secret_dir_symlink_and_file_are_refused(tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(d)
    with pytest.raises(BadInput, match="symbolic link|not a directory"):
        KeyRing([ValueSource("dir", str(tmp_path / "link"))])
    with pytest.raises(BadInput, match="not a directory"):
        KeyRing([ValueSource("dir", str(key(tmp_path / "f", b"v")))])


@pytest.mark.parametrize("bad", ["../x", "..", "/etc/passwd", f"{A}/../{A}", "", "x" * 300])
def test_value_for_validates_the_uuid_before_it_becomes_a_path(tmp_path, bad):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    key(tmp_path / "x", b"outside the directory")
    with pytest.raises(BadInput, match="not a UUID"):
        KeyRing([ValueSource("dir", str(d))]).value_for(bad)


def test_secret_dir_file_that_is_a_symlink_is_refused(tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    (d / A).symlink_to(key(tmp_path / "x", b"v"))
    with pytest.raises(BadInput, match="symbolic link"):
        KeyRing([ValueSource("dir", str(d))]).value_for(A)


# -- issue #12: --secret-command ------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ['a "b', "a 'b", "  ", ""])
def test_secret_command_that_cannot_be_split_is_bad_input_without_echo(cmd):
    from coordinator.steps.keys import parse_command_option
    with pytest.raises(BadInput) as ei:
        parse_command_option(cmd)
    if cmd.strip():
        assert cmd not in str(ei.value)


def test_secret_command_records_argv0_only(tmp_path):
    s = script(tmp_path, 'printf value\n')
    src = ValueSource("command", f"{s} --token=hunter2 {{uuid}}")
    v = KeyRing([src]).value_for(A)
    assert v.source == f"command:{s}"
    assert "hunter2" not in str(src) and "hunter2" not in repr(src)


def test_secret_command_output_is_read_up_to_the_cap_only(tmp_path):
    # `yes` never ends: reading everything first would never return (or exhaust memory).
    with pytest.raises(BadInput, match="more than"):
        KeyRing([ValueSource("command", "yes")]).value_for(A)


def test_secret_command_timeout_kills_the_process_group_and_keeps_no_partial_value(tmp_path, monkeypatch):
    import os
    import time

    import coordinator.steps.keys as keys
    pidfile = tmp_path / "grandchild.pid"
    s = script(tmp_path, f'printf PARTIAL-SECRET\n(sleep 300 & echo $! > {pidfile}; wait) &\nsleep 300\n')
    monkeypatch.setattr(keys, "COMMAND_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(SecretUnavailable, match="timed out") as ei:
        KeyRing([ValueSource("command", str(s))]).value_for(A)
    assert time.monotonic() - t0 < 10
    assert ei.value.__context__ is None and ei.value.__cause__ is None
    grandchild = int(pidfile.read_text())
    for _ in range(50):  # SIGKILL is delivered asynchronously; the reaper is init
        try:
            os.kill(grandchild, 0)
            stat = Path(f"/proc/{grandchild}/stat").read_text().split()[2]
            if stat == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the helper's grandchild survived the timeout")


# -- issue #12: values in memory --------------------------------------------------------------------

def test_secret_value_bytes_not_reachable_by_vars_or_asdict():
    import copy
    import dataclasses
    v = SecretValue(data=b"TOPSECRET", source="stdin")
    for f in (vars, dataclasses.asdict, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            f(v)

    @dataclasses.dataclass
    class Holder:
        value: SecretValue

    with pytest.raises(TypeError):
        dataclasses.asdict(Holder(v))
    assert "TOPSECRET" not in repr(v) and not hasattr(v, "__dict__")


def test_keyring_clear_wipes_values_and_core_dumps_are_off_while_held(tmp_path):
    import resource

    from coordinator.steps import nodump
    before = (resource.getrlimit(resource.RLIMIT_CORE), nodump.dumpable())
    f = key(tmp_path / "k", b"TOPSECRET")
    ring = KeyRing([ValueSource("file", str(f), A)])
    with ring.held():
        with ring.held():  # a nested run (an evacuation's migration) keeps the values
            v = ring.value_for(A)
            assert bytes(v.data) == b"TOPSECRET"
            assert resource.getrlimit(resource.RLIMIT_CORE)[0] == 0
            assert nodump.dumpable() in (0, None)
        assert bytes(v.data) == b"TOPSECRET"
    assert bytes(v.data) == bytes(9)  # wiped in place
    assert (resource.getrlimit(resource.RLIMIT_CORE), nodump.dumpable()) == before
