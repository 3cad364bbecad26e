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

No copy of a value is left behind: every source is read into one preallocated ``bytearray`` (never
``read()``, whose ``bytes`` — and the chunks a growing buffer drops — would stay in the heap once
freed), the exact-size copy the ``SecretValue`` takes is made from it, and it is zeroed; a signal
(Ctrl-C / SIGTERM) while a helper runs kills its process group and zeroes what it printed so far.
Values given inline (Ansible ``secret_values``) are decoded from base64 straight into a
``bytearray`` (``decode_base64``) and held the same way (``KeyRing.hold``).
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from coordinator.core.errors import BadInput, SecretUnavailable
from coordinator.core.ids import canonical_uuid
from coordinator.core.model import SecretValue, command_program
from coordinator.files.keyfile import check_key_file, key_dir, open_key_file

from . import nodump

if TYPE_CHECKING:  # a helper process is started only for a --secret-command source
    import io
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
            return f"command:{command_program(self.arg)[0]}"
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
                    _zero(data)
                self._hold()
                self._cache[uuid] = value
                return value
            return None

    def hold(self, uuid: str, data: bytearray, source: str) -> SecretValue:
        """Hold a value given inline (Ansible ``secret_values``) as if a source had read it: it comes
        first for ``uuid``, no core dump while held, wiped by ``clear()``. ``data`` is zeroed here."""
        uuid = canonical_uuid(uuid)
        try:
            value = SecretValue(data=data, source=source)
        finally:
            _zero(data)
        with self._lock:
            self._hold()
            old = self._cache.pop(uuid, None)
            if old is not None:
                old.wipe()
            self._cache[uuid] = value
        return value

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
        if src.kind == "file":  # applies_to() matched its UUID or usage
            return _read_key_file(src.arg, src.arg, dir_fd=None, what="key file")
        if src.kind == "dir":
            with key_dir(src.arg) as dfd:
                try:
                    os.stat(uuid, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    return None
                return _read_key_file(uuid, f"{src.arg}/{uuid}", dir_fd=dfd, what=f"key file in {src.arg}:")
        if src.kind == "command":
            return _run_command(split_command(src.arg), uuid)
        if src.kind == "stdin":
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            buf = bytearray(MAX_VALUE_BYTES + 1)
            try:
                # NOTE: readinto, not read: read() would return a bytes copy (every binary stream has it;
                # typing's BinaryIO does not declare it)
                n = _fill(buf, cast("io.BufferedIOBase", stream).readinto)
                if n > MAX_VALUE_BYTES:
                    raise BadInput(f"secret {uuid}: stdin gave more than {MAX_VALUE_BYTES} bytes")
                return bytearray(memoryview(buf)[:n])
            finally:
                _zero(buf)
        raise BadInput(f"unknown value source kind {src.kind!r}")


def _zero(buf: bytearray) -> None:
    """Overwrite a buffer that held (part of) a value with zeros, in place (never resized: a resize
    may move it and leave the old bytes in freed memory)."""
    with memoryview(buf) as mv:
        mv[:] = bytes(len(buf))


def _fill(buf: bytearray, readinto: Callable[[memoryview], int | None]) -> int:
    """Read into ``buf`` until it is full or the source ends; the number of bytes read."""
    n = 0
    with memoryview(buf) as mv:
        while n < len(buf):
            got = readinto(mv[n:])
            if not got:
                break
            n += got
    return n


def _read_key_file(path: str, shown: str, *, dir_fd: int | None, what: str) -> bytearray:
    """The exact bytes of a key file (``files.keyfile`` opens and checks it), at most the cap (more is
    refused, never truncated), read into one preallocated buffer: no ``bytes`` copy is made."""
    fd = open_key_file(path, dir_fd=dir_fd, what=what)
    buf = bytearray(MAX_VALUE_BYTES + 1)
    try:
        n = _fill(buf, lambda mv: os.readv(fd, [mv]))
        if n > MAX_VALUE_BYTES:
            raise BadInput(f"{what} {shown[:160]} is larger than {MAX_VALUE_BYTES} bytes")
        return bytearray(memoryview(buf)[:n])
    finally:
        os.close(fd)
        _zero(buf)


def decode_base64(text: str) -> bytearray:
    """Standard base64 (``base64.b64decode(text, validate=True)``'s rules: the alphabet only, length a
    multiple of 4, at most two ``=`` at the end) decoded straight into a ``bytearray`` of the exact
    size: binascii would return an immutable ``bytes`` that stays in the heap. Four characters at a
    time, so every intermediate is below 256 (CPython's shared small ints: no int object holding a
    piece of the value is allocated). ValueError, which never quotes the text, when it is not base64."""
    pad = len(text) - len(text.rstrip("=")) if text.endswith("=") else 0
    if len(text) % 4 or pad > 2:
        raise ValueError("not base64")
    out = bytearray(len(text) // 4 * 3 - pad)
    n = 0
    try:
        for i in range(0, len(text), 4):
            v0, v1, v2, v3 = (_B64.find(c) if c != "=" or i + 4 < len(text) else 64 for c in text[i:i + 4])
            if min(v0, v1, v2, v3) < 0 or v0 == 64 or v1 == 64 or v2 == 64 and v3 != 64:
                raise ValueError("not base64")
            out[n] = v0 << 2 | v1 >> 4
            if v2 != 64:
                out[n + 1] = (v1 & 15) << 4 | v2 >> 2
                if v3 != 64:
                    out[n + 2] = (v2 & 3) << 6 | v3
            n += 3
    except BaseException:
        _zero(out)
        raise
    return out


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The helper runs in its own session (its pid is its process group): end it and every
    process it started. Called before the helper is reaped, so the group id is still its own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_capped(proc: subprocess.Popen[bytes], buf: bytearray, deadline: float) -> tuple[int, str | None]:
    """Read the helper's stdout into ``buf`` (the cap + 1 bytes) until EOF, until it is full or until
    the deadline: ``os.readv`` straight into it, so no ``bytes`` chunk is ever made.
    Returns (bytes read, None | "timeout" | "too-large")."""
    import selectors

    assert proc.stdout is not None
    n = 0
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel, memoryview(buf) as mv:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return n, "timeout"
            if not sel.select(left):
                continue
            got = os.readv(fd, [mv[n:]])
            if not got:
                return n, None
            n += got
            if n > MAX_VALUE_BYTES:
                return n, "too-large"


def _run_command(template: list[str], uuid: str, timeout_s: float | None = None) -> bytearray | None:
    import subprocess  # NOTE: here, not at start-up: only a --secret-command source runs a process

    argv = [part.replace("{uuid}", uuid) for part in template]
    name = template[0]
    timeout_s = COMMAND_TIMEOUT_S if timeout_s is None else timeout_s
    buf = bytearray(MAX_VALUE_BYTES + 1)  # before the helper starts: nothing to undo if this fails
    deferred = _SignalsDeferred()
    try:
        with deferred:  # NOTE: a signal between fork and Popen returning would orphan the helper
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL,  # NOTE: a helper might print what it should not
                                    start_new_session=True, close_fds=True)
    except FileNotFoundError:
        raise BadInput(f"--secret-command: {name} not found") from None
    except OSError as e:
        raise BadInput(f"--secret-command: {name} cannot be run ({e.strerror})", hint="make it executable") from None
    failure: Exception | None = None
    out: bytearray | None = None
    try:
        deferred.replay()  # a signal while it started: now, with the cleanup below in place
        deadline = time.monotonic() + timeout_s
        n, problem = _read_capped(proc, buf, deadline)
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
        if failure is None and n:
            out = bytearray(memoryview(buf)[:n])
    finally:
        # Also on Ctrl-C / SIGTERM (a KeyboardInterrupt here), which then goes on as before: a partial
        # value is still a secret, and the helper and everything it started are ours to end.
        _zero(buf)
        if proc.returncode is None:
            _kill_group(proc)  # timed out, too much, or interrupted: the helper's whole process group
        assert proc.stdout is not None
        proc.stdout.close()
    if failure is not None:
        raise failure  # NOTE: raised outside any except block: no exception context is kept
    return out


class _SignalsDeferred:
    """SIGINT/SIGTERM held back while a helper starts (between fork and ``Popen`` returning, a
    KeyboardInterrupt would leave a process nobody kills). Handlers are restored when the block ends;
    what came meanwhile is delivered again by ``replay()`` — once the caller's cleanup is in place —
    or at once when the block fails. Only in the main thread (where Python runs signal handlers) and
    only for handlers installed from Python; otherwise nothing is deferred."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalsDeferred:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(s) is not None:
                    self.previous[s] = signal.signal(s, lambda signum, frame: self.caught.append(signum))
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if exc_type is not None:
            self.replay()

    def replay(self) -> None:
        caught, self.caught = self.caught, []
        for s in caught:
            signal.raise_signal(s)
