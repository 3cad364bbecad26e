"""Commands on a host over SSH: the ONLY module that imports paramiko (house rule 1).

A command is a format string plus arguments, each quoted with ``shlex.quote`` (house rule 7):
``runner.run("df -Pk {}", path)``. Host keys are checked against one known_hosts file and an
unknown host is refused (a ``RejectPolicy``), never added. One SSH connection per host is opened
lazily and reused by every command (commands may run concurrently as separate channels).

Errors: ``HostUnreachable`` when the host cannot be reached or a command times out;
``BadInput`` for configuration the operator must fix (unknown or changed host key, loose or
unusable key file, failed authentication, missing known_hosts file).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import select
import shlex
import io
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
import importlib
from types import ModuleType
from typing import Any as _Any
from typing import Protocol, runtime_checkable
from collections.abc import Mapping


from coordinator.core.config import HostSsh
from coordinator.core.errors import BadInput, HostUnreachable, MigcoordError
from coordinator.core.params import bounded_int, positive_seconds
from coordinator.core.uris import runs_commands, ssh_target
from coordinator.files.keyfile import read_key_file

from . import openssh


class _LazyModule:
    """paramiko is imported on first use: it costs ~0.25 s, and most runs use no SSH."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _Any:
        mod: ModuleType = importlib.import_module(self._name)
        globals()[self._name] = mod
        return getattr(mod, attr)


paramiko: _Any = _LazyModule("paramiko")

_READ_CHUNK = 65536
# The keys ssh(1)/paramiko's look_for_keys try when neither --ssh-key nor IdentityFile names one.
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")


@dataclass(frozen=True)
class SshConfig:
    """How to reach hosts over SSH. ``key_file`` None: the agent and ~/.ssh keys, as ssh(1) does."""

    user: str = "root"
    port: int = 22
    key_file: Path | None = None
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    ssh_config: Path | None = None  # an OpenSSH client config to honour (item of issue #13)
    per_host: Mapping[str, HostSsh] = field(default_factory=dict, hash=False)  # by host name: the settings file's

    def __post_init__(self) -> None:
        # NOTE: accept str paths from callers; store Paths (the dataclass is frozen).
        if self.key_file is not None and not isinstance(self.key_file, Path):
            object.__setattr__(self, "key_file", Path(self.key_file))
        if not isinstance(self.known_hosts, Path):
            object.__setattr__(self, "known_hosts", Path(self.known_hosts))
        bounded_int(self.port, "the SSH port (--ssh-port)", 1, 65535)
        positive_seconds(self.connect_timeout, "the SSH connect timeout (--ssh-timeout)")
        positive_seconds(self.command_timeout, "the SSH command timeout")


@dataclass(frozen=True)
class CommandResult:
    """What one command did (testinfra's CommandResult, as a frozen value)."""

    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@runtime_checkable
class CommandRunner(Protocol):
    """Runs ``fmt.format(*map(shlex.quote, args))`` on one host and returns its result.

    A non-zero exit status is a result, not an exception; only an unreachable host or a
    timeout raises (``HostUnreachable``)."""

    host: str

    def run(self, fmt: str, *args: str, timeout: float | None = None) -> CommandResult: ...

    def close(self) -> None: ...


def format_command(fmt: str, *args: str) -> str:
    """Pure: the command line for ``fmt`` with every argument shell-quoted (house rule 7).

    Literal braces in ``fmt`` are written ``{{`` / ``}}``; only positional ``{}`` fields are allowed."""
    for a in args:
        if not isinstance(a, str):
            raise TypeError(f"command arguments must be str, got {type(a).__name__}")
    try:
        return fmt.format(*map(shlex.quote, args))
    except (IndexError, KeyError) as e:
        raise ValueError(f"command format {fmt!r} does not match {len(args)} argument(s): {e}") from None


def runner_for(uri: str, config: SshConfig | None) -> CommandRunner | None:
    """The runner for a libvirt URI's host: a ``LocalRunner`` for a local URI (``qemu:///system``),
    an ``SshRunner`` for a remote one, None when the host is remote and SSH is not configured.
    Opens nothing: the connection is made by the first command."""
    if not runs_commands(uri, config is not None):
        return None
    target = ssh_target(uri)
    if target is None:
        return LocalRunner(timeout=config.command_timeout if config else 30.0)
    assert config is not None  # runs_commands: a remote host only with SSH configured
    host, user, port = target
    cfg = config
    h = config.per_host.get(host)
    if h is not None:  # the settings file's [hosts.NAME.ssh]; the URI's own user/port still win
        cfg = replace(cfg, user=h.user or cfg.user, port=h.port or cfg.port,
                      key_file=Path(h.key) if h.key else cfg.key_file,
                      known_hosts=Path(h.known_hosts) if h.known_hosts else cfg.known_hosts)
    cfg = replace(cfg, user=user or cfg.user, port=port or cfg.port)
    return SshRunner(host, cfg)


class LocalRunner:
    """The same interface on this machine, for local URIs.

    NOTE: the command string is the SSH wire format: a remote sshd hands it to the user's shell,
    so it is run here by ``/bin/sh -c`` (never Python's ``shell=True`` on unquoted input) to mean
    exactly the same thing; every argument is already ``shlex.quote``d."""

    host = "localhost"

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def run(self, fmt: str, *args: str, timeout: float | None = None) -> CommandResult:
        command = format_command(fmt, *args)
        limit = timeout if timeout is not None else self.timeout
        try:
            r = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise HostUnreachable(f"command on localhost timed out after {limit:g}s: {command}",
                                  host="localhost", command=command) from None
        return CommandResult(command, r.returncode, r.stdout.decode(errors="replace"),
                             r.stderr.decode(errors="replace"))

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` as ssh-keygen -l and ssh(1) print it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


@functools.cache
def _reject_types() -> tuple[_Any, type]:
    """(exception, policy): RejectPolicy that remembers the offered key, so the refusal can name
    its fingerprint. Built on first use because paramiko is imported lazily."""

    class _UnknownHostKey(paramiko.SSHException):
        def __init__(self, key: _Any) -> None:
            super().__init__("host key not in known_hosts")
            self.key = key

    class _Reject(paramiko.RejectPolicy):
        def missing_host_key(self, client: _Any, hostname: str, key: _Any) -> None:
            raise _UnknownHostKey(key)

    return _UnknownHostKey, _Reject


class SshRunner:
    """Commands on one host over one reused SSH connection (paramiko ``SSHClient``).

    Host keys come only from ``config.known_hosts`` (``load_host_keys``; no system host keys);
    an unknown host is refused (RejectPolicy) and the file is never written. With ``key_file``
    only that key is offered (no agent, no ~/.ssh keys); otherwise the IdentityFile keys (else the
    default ~/.ssh/id_* keys), then the agent. Every key file is read once, at construction, under
    ``files.keyfile``'s rules (O_NOFOLLOW, owner-only, checked on the descriptor) and handed to
    paramiko as a key object: paramiko never opens a key by path. Connect, banner, auth and channel-open
    are bounded by ``connect_timeout``; each command by ``command_timeout`` (or ``timeout=``)."""

    def __init__(self, host: str, config: SshConfig = SshConfig(), *, jump: tuple[str, ...] | None = None) -> None:
        self.host = host
        self.config = config
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._jump: SshRunner | None = None
        self._pkey: paramiko.PKey | None = None
        self._identities: tuple[paramiko.PKey, ...] = ()
        d = SshConfig()
        # The operator's OpenSSH config (HostName, User, Port, IdentityFile, ProxyJump, ...): ssh/openssh.py
        asked = openssh.Asked(user=config.user, port=config.port, key_file=config.key_file,
                              known_hosts=config.known_hosts, ssh_config=config.ssh_config)
        self.route = openssh.route(paramiko, host, asked, defaults=(d.user, d.port, d.known_hosts), jump=jump)
        # Every key is read here, before any network traffic, from a descriptor opened once without
        # following a symlink and checked (files.keyfile); paramiko gets key objects, never a path.
        if config.key_file is not None:
            self._pkey = _load_key(config.key_file)
        else:  # IdentityFile entries, else the default keys: the same owner-only rules as --ssh-key
            paths = self.route.key_files or tuple(
                p for p in (Path(d).expanduser() for d in DEFAULT_IDENTITIES) if p.is_file())
            self._identities = tuple(k for k in (_load_key(p, optional=True) for p in paths) if k is not None)

    def _keys(self) -> tuple[paramiko.PKey | None, tuple[paramiko.PKey, ...], bool]:
        """(the key connect() offers, the key objects offered after it, whether the agent follows).
        NOTE: connect() always gets look_for_keys=False: paramiko would open ~/.ssh/id_* by path."""
        if self._pkey is not None:
            return self._pkey, (), False
        # the key files in order, then the agent, as ssh(1) offers them
        return (self._identities[0] if self._identities else None), self._identities[1:], True

    def _offered(self) -> str:
        if self.config.key_file is not None:
            return f"key {self.config.key_file}"
        if self._identities:
            return f"{len(self._identities)} key file(s) and the agent"
        return "the agent"

    @property
    def where(self) -> str:
        return f"{self.route.user}@{self.host}:{self.route.port}{self.route.via}"

    # -- connection -------------------------------------------------------
    def _transport(self) -> paramiko.Transport:
        with self._lock:
            t = self._client.get_transport() if self._client is not None else None
            if t is None or not t.is_active():
                if self._client is not None:  # NOTE: the peer dropped us; reconnect once, lazily
                    self._client.close()
                    self._client = None
                self._client = self._connect()
                t = self._client.get_transport()
                assert t is not None
            return t

    def _sock(self) -> _Any:
        """The stream to the target when a ProxyJump or ProxyCommand applies, else None (direct TCP).

        ProxyJump: an SSH connection to the last hop (itself routed through the earlier hops, its
        host key checked just as strictly), then a ``direct-tcpip`` channel from it to the target."""
        r, t = self.route, self.config.connect_timeout
        if r.proxy_command:
            try:
                return paramiko.ProxyCommand(r.proxy_command)
            except (OSError, paramiko.SSHException) as e:
                raise HostUnreachable(f"SSH to {self.where}: ProxyCommand failed: {_describe(e)}",
                                      host=self.host) from None
        if not r.proxy_jump:
            return None
        *before, last = r.proxy_jump
        user, host, port = openssh.parse_hop(last)
        d = SshConfig()
        hop_cfg = replace(self.config, user=user or d.user, port=port or d.port, per_host={})
        if self._jump is None:
            self._jump = SshRunner(host, hop_cfg, jump=tuple(before))
        transport = self._jump._transport()
        try:
            return transport.open_channel("direct-tcpip", (r.hostname, r.port), ("127.0.0.1", 0), timeout=t)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise HostUnreachable(f"SSH to {self.where}: jump host {last} cannot reach {r.hostname} port "
                                  f"{r.port}: {_describe(e)}", host=self.host) from None

    def _connect(self) -> paramiko.SSHClient:
        """A client connected and authenticated, host key checked against known_hosts only."""
        r = self.route
        client, unknown_host_key = self._new_client()
        first, rest, agent = self._keys()
        try:
            sock = self._sock()
            try:
                client.connect(r.hostname, port=r.port, username=r.user, sock=sock, pkey=first, look_for_keys=False,
                               allow_agent=agent and not rest, **_connect_kwargs(self.config.connect_timeout))
            except paramiko.AuthenticationException:
                if not rest or not _offer(client, r.user, rest, agent):
                    raise
        except (unknown_host_key, OSError, EOFError, paramiko.SSHException) as e:
            # NOTE: SSHException covers BadHostKey- and AuthenticationException too (_refusal tells them apart)
            client.close()
            raise self._refusal(e, unknown_host_key) from None
        return client

    def _new_client(self) -> tuple[paramiko.SSHClient, type[Exception]]:
        """A client that knows only the known_hosts file's keys and refuses any other (RejectPolicy)."""
        kh, port, hostname = self.route.known_hosts, self.route.port, self.route.hostname
        if not kh.is_file():
            raise BadInput(f"known_hosts file {kh} does not exist",
                           hint=f"create it with the host keys of the hosts to reach (ssh-keyscan -p {port} "
                                f"{hostname} >> {kh}, after verifying the fingerprint)")
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(kh))
        except (OSError, paramiko.SSHException) as e:
            raise BadInput(f"cannot read known_hosts file {kh}: {e}") from None
        unknown_host_key, reject = _reject_types()
        client.set_missing_host_key_policy(reject())
        return client, unknown_host_key

    def _refusal(self, e: BaseException, unknown_host_key: type[Exception]) -> MigcoordError:
        """The one line a failed connection becomes: ours to fix (BadInput) or the host's (HostUnreachable)."""
        r, kh = self.route, self.route.known_hosts
        if isinstance(e, unknown_host_key):
            key = e.key  # type: ignore[attr-defined]
            hostport = r.hostname if r.port == 22 else f"[{r.hostname}]:{r.port}"
            return BadInput(
                f"SSH host key of {r.hostname} port {r.port} is not in {kh}: refused "
                f"(offered {key.get_name()} {fingerprint(key)})",
                hint=f"verify that fingerprint out of band, then add the key: "
                     f"ssh-keyscan -p {r.port} {r.hostname} >> {kh}",
                host=self.host, port=r.port, known_hosts=str(kh), hostport=hostport)
        if isinstance(e, paramiko.BadHostKeyException):
            return BadInput(
                f"SSH host key of {r.hostname} port {r.port} does not match {kh} "
                f"(offered {e.key.get_name()} {fingerprint(e.key)}, expected {fingerprint(e.expected_key)}): "
                "refused, possible man-in-the-middle",
                hint=f"if the host was really re-keyed, remove the old entry (ssh-keygen -R {r.hostname} -f {kh}) "
                     "and add the verified new one",
                host=self.host, port=r.port, known_hosts=str(kh))
        if isinstance(e, paramiko.AuthenticationException):
            return BadInput(f"SSH authentication as {self.where} with {self._offered()} failed",
                            hint="check the user and that the key is authorised on the host",
                            host=self.host, port=r.port)
        # NOTE: OSError covers refused/unroutable (NoValidConnectionsError) and socket timeouts;
        # SSHException here is a banner/handshake failure or timeout: the host is not usable.
        if "No authentication methods available" in str(e):  # nothing to offer: ours to fix
            return BadInput(f"SSH to {self.where}: no key to offer (no usable key file, no agent key)",
                            hint="give --ssh-key, or an IdentityFile, or load a key into ssh-agent",
                            host=self.host, port=r.port)
        return HostUnreachable(f"SSH to {self.where} failed: {_describe(e)}", host=self.host, port=r.port)

    # -- commands ---------------------------------------------------------
    def run(self, fmt: str, *args: str, timeout: float | None = None) -> CommandResult:
        command = format_command(fmt, *args)
        limit = timeout if timeout is not None else self.config.command_timeout
        transport = self._transport()
        try:
            chan = transport.open_session(timeout=self.config.connect_timeout)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise HostUnreachable(f"SSH to {self.where}: cannot open a channel: {_describe(e)}",
                                  host=self.host) from None
        try:
            chan.exec_command(command)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + limit
            while True:
                # NOTE: drain stdout and stderr together: both share one SSH window, so reading
                # one to the end first could stall the other.
                while chan.recv_ready():
                    out += chan.recv(_READ_CHUNK)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(_READ_CHUNK)
                # NOTE: the exit status can arrive before the last output (paramiko's recv_exit_status docs):
                # done only once the output has ended too (EOF, or the channel closed). Breaking on the status
                # alone returned an empty stdout about once in ten matrix runs ("swtpm … cannot report its
                # capabilities (not JSON …)", a false block, session 5).
                ended = chan.eof_received or chan.closed
                if chan.exit_status_ready() and ended and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if chan.closed and not chan.exit_status_ready():
                    raise HostUnreachable(f"SSH to {self.where}: the connection closed during {command!r}",
                                          host=self.host, command=command)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HostUnreachable(f"command on {self.host} timed out after {limit:g}s: {command}",
                                          host=self.host, command=command)
                if chan.eof_received:
                    chan.status_event.wait(min(left, 0.5))  # output complete; the exit status follows
                else:
                    select.select([chan], [], [], min(left, 0.5))
            status = chan.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise HostUnreachable(f"SSH to {self.where} failed during {command!r}: {_describe(e)}",
                                  host=self.host, command=command) from None
        finally:
            chan.close()
        return CommandResult(command, status, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._jump is not None:
                self._jump.close()
                self._jump = None

    def __enter__(self) -> SshRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SshRunner({self.where})"


def _connect_kwargs(timeout: float) -> dict[str, float]:
    """connect()'s timeouts; ``channel_timeout`` exists only from paramiko 3.2 on (older: its default)."""
    out = dict(timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    if "channel_timeout" in inspect.signature(paramiko.SSHClient.connect).parameters:
        out["channel_timeout"] = timeout
    return out


def _offer(client: paramiko.SSHClient, user: str, keys: tuple[paramiko.PKey, ...], agent: bool) -> bool:
    """After connect()'s first key was refused: the other key objects, then the agent's keys, on the
    same transport (paramiko's connect takes one ``pkey``; a path it would open itself)."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        return False
    agent_keys: tuple[_Any, ...] = ()
    ag = None
    if agent:
        ag = paramiko.Agent()
        agent_keys = tuple(ag.get_keys())
    try:
        for key in (*keys, *agent_keys):
            try:
                transport.auth_publickey(user, key)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return True
        return False
    finally:
        if ag is not None:
            ag.close()


def _load_key(path: Path, *, optional: bool = False) -> paramiko.PKey | None:
    """The private key from the bytes read on the checked descriptor (``files.keyfile``): the
    file is opened once, without following a symlink, so what was checked is what is used.

    ``optional`` (IdentityFile / default keys): a key file that breaks the file rules is still
    refused, but one paramiko cannot use — passphrase-protected (the agent may hold it), a public
    key, another format — is skipped, as ssh(1) skips it."""
    data = read_key_file(path, 1 << 20)
    text = bytes(data).decode("utf-8", "replace")
    data[:] = bytes(len(data))
    problem: BaseException | None = None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            if optional:
                return None
            raise BadInput(f"key file {path} is passphrase-protected",
                           hint="use an unencrypted key reserved for migcoord, or load it into ssh-agent and "
                                "leave the key file unset") from None
        except (paramiko.SSHException, ValueError, TypeError) as e:
            problem = problem or e
    if optional:
        return None
    raise BadInput(f"key file {path} is not a usable SSH private key: {_describe(problem or ValueError())}")


def _describe(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        reasons = {getattr(x, "strerror", None) or str(x) for x in e.errors.values()}
        return "; ".join(sorted(reasons)) or "cannot connect"
    text = str(e).strip() or type(e).__name__
    return " ".join(text.split())  # one line
