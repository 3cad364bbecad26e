"""Where secret values come from when the source host's API cannot give them.

Sources are tried in the order the operator gave them: a key file per UUID, a
directory of files named by UUID, a helper command (run without a shell, ``{uuid}``
substituted, value on stdout — like git credential helpers), or stdin. Bytes are
taken exactly as they are; a trailing newline earns a warning because it is almost
always the ``virsh secret-set-value --file`` mistake, and libvirt would then hold a
different value than the source.
"""
from __future__ import annotations

import fnmatch
import logging
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Sequence

from coordinator.core.errors import BadInput, SecretUnavailable
from coordinator.core.ids import canonical_uuid
from coordinator.files.keyfile import check_key_file
from coordinator.core.model import SecretValue

log = logging.getLogger("migcoord")

COMMAND_TIMEOUT_S = 30.0
MAX_VALUE_BYTES = 1 << 20  # libvirt caps secret values far below this


@dataclass(frozen=True)
class ValueSource:
    """One operator-given source. kind: file | dir | command | stdin."""

    kind: str
    arg: str
    uuid: str | None = None  # file and stdin apply to one UUID (a file may name a usage pattern instead)
    usage: str | None = None  # fnmatch pattern on the secret's usage id (from the settings file)

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.kind != "stdin" else "stdin"

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
        raise BadInput(f"--secret-file expects UUID=PATH, got {opt!r}")
    return ValueSource("file", path, canonical_uuid(uuid))


def _read_key_file(path: Path) -> bytes:
    check_key_file(path)
    with open(path, "rb") as f:
        data = f.read(MAX_VALUE_BYTES + 1)
    if len(data) > MAX_VALUE_BYTES:
        raise BadInput(f"key file {path} is larger than {MAX_VALUE_BYTES} bytes")
    return data


class KeyRing:
    """Supplies values for UUIDs from the operator's sources; each value is read at most once."""

    def __init__(self, sources: Sequence[ValueSource] = (), stdin: BinaryIO | None = None) -> None:
        self.sources = list(sources)
        self._stdin = stdin
        self._cache: dict[str, SecretValue] = {}
        stdin_uuids = [s.uuid for s in self.sources if s.kind == "stdin"]
        if len(stdin_uuids) > 1:
            raise BadInput("only one secret can be read from stdin")
        for s in self.sources:
            if s.kind == "file":
                check_key_file(Path(s.arg))  # fail fast, before anything changes
            elif s.kind == "dir" and not Path(s.arg).is_dir():
                raise BadInput(f"secret directory {s.arg} does not exist or is not a directory")
            elif s.kind == "command" and not shlex.split(s.arg):
                raise BadInput("--secret-command is empty")

    def has_sources(self) -> bool:
        return bool(self.sources)

    def value_for(self, uuid: str, usage_id: str | None = None) -> SecretValue | None:
        """The first value any source that applies to ``uuid`` (and its usage id) offers, or None."""
        if uuid in self._cache:
            return self._cache[uuid]
        for src in self.sources:
            if not src.applies_to(uuid, usage_id):
                continue
            data = self._try(src, uuid)
            if data is not None:
                if data.endswith(b"\n"):
                    log.warning("secret %s: value from %s ends with a newline; it is used as is "
                                "(byte-exact) — if that newline is a mistake, remove it", uuid, src)
                if not data:
                    raise SecretUnavailable(f"secret {uuid}: {src} gave an empty value")
                value = SecretValue(data=data, source=str(src))
                self._cache[uuid] = value
                return value
        return None

    def _try(self, src: ValueSource, uuid: str) -> bytes | None:
        if src.kind == "file":
            return _read_key_file(Path(src.arg))
        if src.kind == "dir":
            path = Path(src.arg) / uuid
            return _read_key_file(path) if path.exists() else None
        if src.kind == "command":
            return self._run_command(src.arg, uuid)
        if src.kind == "stdin":
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            data = stream.read(MAX_VALUE_BYTES + 1)
            if len(data) > MAX_VALUE_BYTES:
                raise BadInput(f"secret {uuid}: stdin gave more than {MAX_VALUE_BYTES} bytes")
            return data
        raise BadInput(f"unknown value source kind {src.kind!r}")

    @staticmethod
    def _run_command(cmd: str, uuid: str) -> bytes | None:
        argv = [part.replace("{uuid}", uuid) for part in shlex.split(cmd)]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=COMMAND_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise BadInput(f"--secret-command: {argv[0]} not found") from None
        except OSError as e:
            raise BadInput(f"--secret-command: {argv[0]} cannot be run ({e.strerror})",
                           hint="make it executable") from None
        except subprocess.TimeoutExpired:
            raise SecretUnavailable(f"secret {uuid}: command {argv[0]} timed out "
                                    f"after {COMMAND_TIMEOUT_S:.0f}s") from None
        if r.returncode != 0:
            # NOTE: stderr is not echoed: a helper might print what it should not.
            raise SecretUnavailable(f"secret {uuid}: command {argv[0]} exited with {r.returncode}",
                                    hint="run the helper by hand to see its error")
        if len(r.stdout) > MAX_VALUE_BYTES:
            raise BadInput(f"secret {uuid}: command {argv[0]} printed more than {MAX_VALUE_BYTES} bytes")
        return r.stdout or None
