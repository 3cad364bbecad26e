"""Where secret values come from when the source host's API cannot give them.

Sources are tried in the order the operator gave them: a key file per UUID, a
directory of files named by UUID, a helper command (run without a shell, ``{uuid}``
substituted, value on stdout — like git credential helpers), or stdin. Bytes are
taken exactly as they are; a trailing newline earns a warning because it is almost
always the ``virsh secret-set-value --file`` mistake, and libvirt would then hold a
different value than the source.

Key files are opened without following symlinks and checked on the descriptor
(``files.keyfile``). A helper command runs in its own session; at most the size cap is read
from its stdout, and on a timeout its whole process group is killed. Only its argv[0] is
ever recorded (journal, JSON, events): the other tokens may be credentials. Values read are
kept until ``clear()`` — which the flows call when a run is done — and while any value is
kept the process writes no core dump (``steps.nodump``).
"""
from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from coordinator.core.errors import BadInput, SecretUnavailable
from coordinator.core.ids import canonical_uuid
from coordinator.core.model import SecretValue
from coordinator.files.keyfile import check_key_file, key_dir, read_key_file

from . import nodump

if TYPE_CHECKING:  # a helper process is started only for a --secret-command source
    import subprocess

log = logging.getLogger("migcoord")

COMMAND_TIMEOUT_S = 30.0
MAX_VALUE_BYTES = 1 << 20  # libvirt caps secret values far below this


def split_command(cmd: str) -> list[str]:
    """``--secret-command`` as argv (shell-like quoting, no shell). The command line is never
    echoed in an error: its tokens may be credentials."""
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise BadInput(f"--secret-command cannot be split into words ({e})",
                       hint="quote like a shell would; no shell runs it") from None
    if not argv:
        raise BadInput("--secret-command is empty")
    return argv


@dataclass(frozen=True)
class ValueSource:
    """One operator-given source. kind: file | dir | command | stdin."""

    kind: str
    arg: str
    uuid: str | None = None  # file and stdin apply to one UUID (a file may name a usage pattern instead)
    usage: str | None = None  # fnmatch pattern on the secret's usage id (from the settings file)

    def __str__(self) -> str:
        if self.kind == "stdin":
            return "stdin"
        if self.kind == "command":  # argv[0] only: the other tokens may be credentials
            return f"command:{split_command(self.arg)[0]}"
        return f"{self.kind}:{self.arg}"

    def __repr__(self) -> str:
        return f"ValueSource({str(self)!r})"

    def applies_to(self, uuid: str, usage_id: str | None) -> bool:
        """Whether this source is asked for ``uuid`` (whose usage id on the source is ``usage_id``)."""
        if self.uuid is not None and self.uuid != uuid:
            return False
        if self.usage is not None:
            return usage_id is not None and fnmatch.fnmatchcase(usage_id, self.usage)
        return self.uuid is not None or self.kind in ("dir", "command")


def parse_file_option(opt: str) -> ValueSource:
    """``UUID=PATH`` as given to --secret-file."""
    uuid, sep, path = opt.partition("=")
    if not sep or not path:
        raise BadInput(f"--secret-file expects UUID=PATH, got {opt[:200]!r}")
    return ValueSource("file", path, canonical_uuid(uuid))


def parse_command_option(cmd: str) -> ValueSource:
    split_command(cmd)
    return ValueSource("command", cmd)


class KeyRing:
    """Supplies values for UUIDs from the operator's sources; each value is read at most once
    and kept until ``clear()``. ``held()`` brackets a run: nested runs (an evacuation's
    migrations) share the values, the outermost one's end drops them."""

    def __init__(self, sources: Sequence[ValueSource] = (), stdin: BinaryIO | None = None) -> None:
        self.sources = list(sources)
        self._stdin = stdin
        self._cache: dict[str, SecretValue] = {}
        self._kept: list[SecretValue] = []  # values read elsewhere this run (source API), wiped with ours
        self._lock = threading.RLock()
        self._runs = 0
        stdin_uuids = [s.uuid for s in self.sources if s.kind == "stdin"]
        if len(stdin_uuids) > 1:
            raise BadInput("only one secret can be read from stdin")
        for s in self.sources:  # fail fast, before anything changes
            if s.kind == "file":
                check_key_file(Path(s.arg))
            elif s.kind == "dir":
                with key_dir(s.arg):
                    pass
            elif s.kind == "command":
                split_command(s.arg)

    def has_sources(self) -> bool:
        return bool(self.sources)

    def value_for(self, uuid: str, usage_id: str | None = None) -> SecretValue | None:
        """The first value any source that applies to ``uuid`` (and its usage id) offers, or None."""
        uuid = canonical_uuid(uuid)  # NOTE: before it can become a file name (dir/../x)
        with self._lock:
            if uuid in self._cache:
                return self._cache[uuid]
            for src in self.sources:
                if not src.applies_to(uuid, usage_id):
                    continue
                data = self._try(src, uuid)
                if data is None:
                    continue
                try:
                    if not data:
                        raise SecretUnavailable(f"secret {uuid}: {src} gave an empty value")
                    if data.endswith(b"\n"):
                        log.warning("secret %s: value from %s ends with a newline; it is used as is "
                                    "(byte-exact) — if that newline is a mistake, remove it", uuid, src)
                    value = SecretValue(data=data, source=str(src))
                finally:
                    data[:] = bytes(len(data))
                self._hold()
                self._cache[uuid] = value
                return value
            return None

    def _hold(self) -> None:
        if not self._cache and not self._kept:
            nodump.acquire()

    def keep(self, value: SecretValue) -> SecretValue:
        """Hold a value read elsewhere in this run (the source host's API) under the same rules:
        no core dump while held, wiped by ``clear()``."""
        with self._lock:
            self._hold()
            self._kept.append(value)
        return value

    def clear(self) -> None:
        """Wipe and drop every value read or kept so far (a stdin value cannot be read again)."""
        with self._lock:
            if not self._cache and not self._kept:
                return
            for v in [*self._cache.values(), *self._kept]:
                v.wipe()
            self._cache.clear()
            self._kept.clear()
            nodump.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[KeyRing]:
        """One run: values read inside are kept for nested runs and dropped at the outermost end."""
        with self._lock:
            self._runs += 1
        try:
            yield self
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    self.clear()

    def _try(self, src: ValueSource, uuid: str) -> bytearray | None:
        if src.kind == "file":
            return read_key_file(src.arg, MAX_VALUE_BYTES)  # applies_to() matched its UUID or usage
        if src.kind == "dir":
            with key_dir(src.arg) as dfd:
                try:
                    os.stat(uuid, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    return None
                return read_key_file(uuid, MAX_VALUE_BYTES, dir_fd=dfd, what=f"key file in {src.arg}:")
        if src.kind == "command":
            return _run_command(split_command(src.arg), uuid)
        if src.kind == "stdin":
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            data = bytearray(stream.read(MAX_VALUE_BYTES + 1))
            if len(data) > MAX_VALUE_BYTES:
                data[:] = bytes(len(data))
                raise BadInput(f"secret {uuid}: stdin gave more than {MAX_VALUE_BYTES} bytes")
            return data
        raise BadInput(f"unknown value source kind {src.kind!r}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The helper runs in its own session (its pid is its process group): end it and every
    process it started. Called before the helper is reaped, so the group id is still its own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_capped(proc: subprocess.Popen[bytes], deadline: float) -> tuple[bytearray, str | None]:
    """Read the helper's stdout until EOF, at most the cap + 1 bytes and until the deadline.
    Returns (bytes read, None | "timeout" | "too-large")."""
    import selectors

    assert proc.stdout is not None
    buf = bytearray()
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return buf, "timeout"
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return buf, None
            buf += chunk
            if len(buf) > MAX_VALUE_BYTES:
                return buf, "too-large"


def _run_command(template: list[str], uuid: str, timeout_s: float | None = None) -> bytearray | None:
    import subprocess  # NOTE: here, not at start-up: only a --secret-command source runs a process

    argv = [part.replace("{uuid}", uuid) for part in template]
    name = template[0]
    timeout_s = COMMAND_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL,  # NOTE: a helper might print what it should not
                                start_new_session=True, close_fds=True)
    except FileNotFoundError:
        raise BadInput(f"--secret-command: {name} not found") from None
    except OSError as e:
        raise BadInput(f"--secret-command: {name} cannot be run ({e.strerror})", hint="make it executable") from None
    deadline = time.monotonic() + timeout_s
    buf, problem = _read_capped(proc, deadline)
    failure: Exception | None = None
    if problem is None:
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            problem = "timeout"
        else:
            if code != 0:
                # NOTE: stderr is not echoed: a helper might print what it should not.
                failure = SecretUnavailable(f"secret {uuid}: command {name} exited with {code}",
                                            hint="run the helper by hand to see its error")
    if problem == "timeout":
        failure = SecretUnavailable(f"secret {uuid}: command {name} timed out after {timeout_s:g}s")
    elif problem == "too-large":
        failure = BadInput(f"secret {uuid}: command {name} printed more than {MAX_VALUE_BYTES} bytes")
    if proc.returncode is None:
        _kill_group(proc)  # timed out or too much: the helper and everything it started
    assert proc.stdout is not None
    proc.stdout.close()
    if failure is not None:
        buf[:] = bytes(len(buf))  # a partial value is still a secret
        raise failure  # NOTE: raised outside any except block: no exception context is kept
    return buf or None
