"""The operator's OpenSSH client setup, so the SSH checks reach a host the way ``qemu+ssh://`` does.

``ssh(1)`` reads ``~/.ssh/config``; libvirt's ``qemu+ssh://`` runs ``ssh``; so the host name in a
URI is often an alias whose real ``HostName``, ``User``, ``Port``, ``IdentityFile`` and
``ProxyJump``/``ProxyCommand`` live there. ``route`` applies that file (paramiko's ``SSHConfig``,
the same matching rules and ``%h``/``%p`` tokens) on top of ``SshConfig``; a value migcoord was
given explicitly (not left at ``SshConfig``'s default) wins, as a command-line option does for ssh.

Host keys stay strict: the target's key is checked under its ``HostName`` (``[name]:port`` off
port 22) against the known_hosts file — hashed entries included (paramiko's ``HostKeys``) — and
every jump host's key the same way; nothing is ever added.
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.core.errors import BadInput
from coordinator.core.uris import UriFacts, ssh_client_args, ssh_client_risk

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


@dataclass(frozen=True)
class Route:
    """How to reach one host: where to connect, as whom, with which keys, through what."""

    hostname: str
    user: str
    port: int
    known_hosts: Path
    key_files: tuple[Path, ...] = ()      # IdentityFile entries that exist (when no --ssh-key)
    proxy_jump: tuple[str, ...] = ()      # hops, nearest to us first: "[user@]host[:port]"
    proxy_command: str | None = None      # tokens already expanded

    @property
    def via(self) -> str:
        if self.proxy_jump:
            return f" via {','.join(self.proxy_jump)}"
        return " via ProxyCommand" if self.proxy_command else ""


def config_path(explicit: Path | None) -> Path | None:
    """``--ssh-config``, else ``~/.ssh/config`` when it exists, else none."""
    if explicit is not None:
        if not explicit.expanduser().is_file():
            raise BadInput(f"SSH client config {explicit} does not exist")
        return explicit.expanduser()
    default = DEFAULT_SSH_CONFIG.expanduser()
    return default if default.is_file() else None


def lookup(paramiko: Any, path: Path | None, host: str) -> dict[str, Any]:
    """paramiko's view of the ``Host``/``Match`` blocks that apply to ``host`` ({} without a file)."""
    if path is None:
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(str(path)).lookup(host))
    except (OSError, ValueError, paramiko.SSHException) as e:
        raise BadInput(f"cannot use SSH client config {path}: {e}") from None


def parse_hop(hop: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (one ProxyJump entry) → (user, host, port)."""
    text = hop.removeprefix("ssh://")
    user, _, rest = text.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):  # [v6addr]:port
        host, _, tail = rest[1:].partition("]")
        port = tail.removeprefix(":") or None
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    if not host:
        raise BadInput(f"ProxyJump entry {hop!r} names no host")
    try:
        return user or None, host, int(port) if port else None
    except ValueError:
        raise BadInput(f"ProxyJump entry {hop!r} has a bad port") from None


@dataclass(frozen=True)
class Asked:
    """What the caller's SshConfig says, before the operator's OpenSSH config fills in the rest."""

    user: str
    port: int
    key_file: Path | None
    known_hosts: Path
    ssh_config: Path | None


def route(paramiko: Any, host: str, asked: Asked, defaults: tuple[str, int, Path],
          jump: tuple[str, ...] | None = None) -> Route:
    """The route to ``host``. ``defaults``: SshConfig's own (user, port, known_hosts), which the
    OpenSSH config may replace; anything else was given and stays. ``jump``: the hops before
    this host when it is itself a ProxyJump hop (they replace its own ProxyJump, as ssh -J does)."""
    user, port, key_file, known_hosts = asked.user, asked.port, asked.key_file, asked.known_hosts
    opts = lookup(paramiko, config_path(asked.ssh_config), host)
    d_user, d_port, d_known = defaults
    if user == d_user and opts.get("user"):
        user = opts["user"]
    if port == d_port and opts.get("port"):
        try:
            port = int(opts["port"])
        except ValueError:
            raise BadInput(f"SSH client config: Port {opts['port']!r} for {host} is not a number") from None
    if known_hosts == d_known and opts.get("userknownhostsfile"):
        known_hosts = Path(str(opts["userknownhostsfile"]).split()[0]).expanduser()
    keys: tuple[Path, ...] = ()
    if key_file is None:
        keys = tuple(p for p in (Path(k).expanduser() for k in opts.get("identityfile", ())) if p.is_file())
    hops: tuple[str, ...]
    if jump is not None:
        hops = jump
    else:
        raw = str(opts.get("proxyjump", ""))
        hops = () if raw.lower() == "none" else tuple(h.strip() for h in raw.split(",") if h.strip())
    command = opts.get("proxycommand")
    if hops or not command or str(command).lower() == "none":
        command = None
    return Route(hostname=str(opts.get("hostname", host)), user=user, port=port, known_hosts=known_hosts,
                 key_files=keys, proxy_jump=hops, proxy_command=command)


# -- what libvirt's qemu+ssh:// transport will do (the transport rule, issue #21) ------------------

SSH_G_TIMEOUT = 10.0  # seconds: ssh -G reads files only, but a ``Match exec`` runs a program
SYSTEM_SSH_CONFIG = Path("/etc/ssh/ssh_config")


def resolve_client(f: UriFacts, timeout: float = SSH_G_TIMEOUT) -> dict[str, str]:
    """``ssh -G`` with the options and host libvirt passes (``core.uris.ssh_client_args``): the
    settings OpenSSH will really use — ``~/.ssh/config``, ``/etc/ssh/ssh_config``, Include and Match
    applied. ``ssh`` is found on PATH as libvirt's virCommandNew("ssh") finds it; no network is
    touched. OSError/ValueError say why it could not be resolved (then libvirt's ssh fails too)."""
    try:
        p = subprocess.run(["ssh", "-G", *ssh_client_args(f)], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, check=False)
    except FileNotFoundError:
        raise OSError("no ssh client on PATH") from None
    except subprocess.TimeoutExpired:
        raise OSError(f"ssh -G did not answer within {timeout:g}s") from None
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.decode(errors="replace").splitlines() if ln.strip()
                 and not ln.startswith("Pseudo-terminal")]
        raise ValueError(f"ssh -G failed: {lines[-1] if lines else f'exit status {p.returncode}'}")
    out: dict[str, str] = {}
    for line in p.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key.lower(), value.strip())
    return out


def _user_config() -> Path:
    # NOTE: ssh(1) takes ~ from the password database, not from $HOME
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "config"


_KEYWORD = re.compile(r"\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)")


def _find_in(path: Path, base: Path, option: str, wanted: set[str], seen: set[Path], depth: int = 0) -> str | None:
    if depth > 16 or path in seen:
        return None
    seen.add(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for n, line in enumerate(lines, 1):
        m = _KEYWORD.match(line)
        if not m:
            continue
        key, words = m.group(1).lower(), m.group(2).split()
        if key == "include":
            for pattern in words:
                full = Path(pattern).expanduser()
                for hit in sorted(glob.glob(str(full if full.is_absolute() else base / full))):
                    found = _find_in(Path(hit), base, option, wanted, seen, depth + 1)
                    if found:
                        return found
        elif key == option.lower() and words and words[0].strip('"').lower() in wanted:
            return f"{path}:{n}"
    return None


def find_setting(option: str, values: Iterable[str], files: Iterable[Path] | None = None) -> str | None:
    """``FILE:LINE`` of the first line that sets ``option`` to one of ``values`` (any case) in the
    files ssh(1) reads — the user's config, then the system's, following Include — or None (the value
    may come from elsewhere, e.g. ``-o``). For the refusal's message only: the verdict is ``ssh -G``'s."""
    wanted = {v.lower() for v in values}
    seen: set[Path] = set()
    for path in files if files is not None else (_user_config(), SYSTEM_SSH_CONFIG):
        found = _find_in(path, path.parent, option, wanted, seen)
        if found:
            return found
    return None


_SPELLINGS = {"StrictHostKeyChecking": {"false": ("no", "off", "false"), "accept-new": ("accept-new",)},
              "UserKnownHostsFile": {}}


def client_risk(f: UriFacts) -> str | None:
    """The transport rule's verdict for a URI where libvirt runs the OpenSSH client: the URI's own
    risk with the locality the client really has, then what its config weakens — naming the config
    line when one is found. (``core.uris.transport_risk`` calls this as its ``ssh_client``.)"""
    try:
        settings = resolve_client(f)
    except (OSError, ValueError) as e:
        return f"cannot tell what the OpenSSH client would do for {f.host or 'localhost'}: {e}"
    risk, weak = ssh_client_risk(f, settings)
    if weak is None:
        return risk
    spellings = _SPELLINGS.get(weak.option, {}).get(weak.value.lower(), (weak.value,))
    return weak.describe(find_setting(weak.option, spellings))
