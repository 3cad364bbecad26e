"""Pure facts about libvirt URIs: is it one, which transport, which host, is the channel protected.

The one place that parses a libvirt URI. The transport rule (a secret value never crosses an
unprotected remote channel without ``--allow-plaintext-secrets``) is decided here and only here;
``steps.provision.SecretProvisioner`` is where every value read or write asks it.
"""
from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from .errors import BadInput, Blocked

# libvirt transports whose URI port (and user) are the SSH ones.
_SSH_TRANSPORTS = {"ssh", "libssh", "libssh2"}
# Transports that encrypt and authenticate the stream when nothing in the URI weakens them.
_PROTECTED = {"tls"} | _SSH_TRANSPORTS
_URI_RE = re.compile(r"^qemu(\+[a-z0-9]+)?://[^/\s]*/(system|session)(\?\S*)?$")
_LOCAL_NAMES = {"localhost", "localhost.", "localhost.localdomain", "localhost6", "ip6-localhost",
                "ip6-loopback"}


def check_uri(uri: str) -> str:
    """Reject what cannot be a QEMU libvirt URI before any connection attempt."""
    if not isinstance(uri, str) or not _URI_RE.match(uri) or any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise BadInput(f"not a libvirt QEMU URI: {uri!r}",
                       hint="use e.g. qemu:///system, qemu+ssh://HOST/system, qemu+tls://HOST/system")
    uri_facts(uri)  # the host part must parse too (e.g. an unclosed IPv6 bracket)
    return uri


def _numeric_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host denotes, in every spelling the resolver accepts as numeric
    (``127.1``, ``2130706433``, ``0x7f.0.0.1`` — inet_aton's forms), without any lookup."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_this_machine(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback or addr.is_unspecified


@dataclass(frozen=True)
class UriFacts:
    uri: str
    driver: str
    transport: str  # "unix" (local), "tls", "tcp", "ssh", ...
    host: str | None
    user: str | None = None
    port: int | None = None
    weakened_by: str | None = None  # e.g. "no_verify=1": the URI switches the channel's protection off

    @property
    def is_loopback(self) -> bool:
        """Certainly this machine: no host, ``localhost``, or a numeric loopback/unspecified address.
        (Names other than ``localhost`` are not trusted: DNS could send them anywhere.)"""
        if not self.host or self.host == "localhost":
            return True
        addr = _numeric_address(self.host)
        return addr is not None and _is_this_machine(addr)

    @property
    def may_be_this_machine(self) -> bool:
        """Whoever resolves it may reach itself: a local transport, or any loopback spelling —
        generous on purpose (used to refuse, never to exempt)."""
        if self.transport == "unix" or self.is_loopback:
            return True
        h = (self.host or "").lower().rstrip(".")
        return h in _LOCAL_NAMES or h.endswith(".localhost")

    @property
    def risk(self) -> str | None:
        """Why secret bytes sent over this connection would be exposed, or None when they would not."""
        if self.transport == "ext":
            return "an external command carries the connection (qemu+ext)"
        if self.weakened_by == "command=...":  # another program carries it: it may go anywhere
            return f"{self.weakened_by} hands the connection to another program"
        if self.is_loopback or self.transport == "unix":  # NOTE: never leaves this machine
            return None
        if self.transport not in _PROTECTED:
            return f"{self.transport} is plaintext"
        if self.weakened_by:
            return f"{self.weakened_by} switches off the {self.transport} peer verification"
        return None

    @property
    def plaintext_remote(self) -> bool:
        """True when secret bytes sent over this connection would cross a network unprotected."""
        return self.risk is not None


def _weakening(transport: str, query: str) -> str | None:
    """The URI parameter that turns the channel's authentication off (libvirt's remote driver
    parameters, matched case-insensitively as libvirt does): ``no_verify`` (TLS certificate /
    SSH host key), ``known_hosts_verify=auto|ignore`` (libssh/libssh2), ``command`` (another
    program carries the stream), ``tls_priority`` (can enable NULL or anonymous ciphers)."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        key, v = name.strip().lower(), value.strip().lower()
        if key == "no_verify" and v not in ("", "0"):
            return f"no_verify={value}"
        if key == "known_hosts_verify" and v not in ("", "normal"):
            return f"known_hosts_verify={value}"
        if key == "command":
            return "command=..."
        if key == "tls_priority" and transport == "tls":
            return "tls_priority=..."
    return None


def uri_facts(uri: str) -> UriFacts:
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise BadInput(f"not a libvirt URI: {uri!r} (malformed host or port)",
                       hint="e.g. qemu+tcp://[fd00::5]:16509/system") from None
    if "://" not in uri or not parts.scheme:
        raise BadInput(f"not a libvirt URI: {uri!r}", hint="e.g. qemu+ssh://HOST/system")
    driver, _, transport = parts.scheme.partition("+")
    if not transport:
        # NOTE: libvirt defaults to TLS for a remote host and to the UNIX socket without one.
        transport = "tls" if host else "unix"
    return UriFacts(uri=uri, driver=driver, transport=transport, host=host, user=parts.username or None,
                    port=port, weakened_by=_weakening(transport, parts.query))


def ssh_target(uri: str) -> tuple[str, str | None, int | None] | None:
    """(host, user, port) to reach a libvirt URI's host over SSH; None for a local URI.

    The user and port in the URI are SSH's only for ssh transports (``qemu+ssh://u@h:2222/system``);
    for ``qemu+tcp://h:16509`` the port is libvirt's, so SSH's own defaults apply."""
    f = uri_facts(uri)
    if not f.host:
        return None
    if f.transport in _SSH_TRANSPORTS:
        return f.host, f.user, f.port
    return f.host, None, None


def runs_commands(uri: str, ssh_configured: bool) -> bool:
    """Whether commands can be run on ``uri``'s host: here for a local URI, over SSH for a remote one
    only when SSH is configured (``ssh.runner.runner_for`` builds the runner; the checks ask this first
    so that a run without SSH never loads the SSH seam)."""
    return ssh_target(uri) is None or ssh_configured


def same_host_message(src_uri: str, dst_uri: str, src_host_uuid: str, dst_host_uuid: str) -> str | None:
    """Why these two connections are one host (equal host UUIDs: libvirt refuses such a
    migration), or None. Shared by the HOST-SAME check and ``migrate``'s early refusal."""
    if src_host_uuid != dst_host_uuid:
        return None
    return f"{dst_uri} is the same host as {src_uri} (host UUID {src_host_uuid})"


def check_endpoints(source_uri: str, dest_uris: Sequence[str]) -> None:
    """Every URI is one; no destination is the source or given twice; and a destination that names
    this machine (no host, ``localhost``, 127.x, ...) is refused when the source is remote: with
    peer-to-peer migration the *source daemon* resolves the destination URI — it would reach
    itself — while this machine would provision the secrets on its own libvirtd. (Both on this
    machine, as in the lab, is one consistent view and fine.) BadInput, before any connection."""
    check_uri(source_uri)
    if not dest_uris:
        raise BadInput("no destination given", hint="give at least one --to URI")
    src = uri_facts(source_uri)
    for u in dest_uris:
        check_uri(u)
        if u == source_uri:
            raise BadInput(f"destination {u} is the source", hint="give a different --to")
        if uri_facts(u).may_be_this_machine and not src.may_be_this_machine:
            raise BadInput(f"destination {u} names this machine, but the source {source_uri} is remote: "
                           "its daemon would resolve the destination as itself",
                           hint="give the destination's real host name or address")
    if len(set(dest_uris)) != len(dest_uris):
        raise BadInput("a destination is given twice")


def distinct_hosts(host_uuids: dict[str, str]) -> None:
    """URI → host UUID after connecting: two spellings of one host (``h`` and ``h:16509``) are one
    host and would double its capacity and concurrency limits; refuse them (BadInput)."""
    seen: dict[str, str] = {}
    for uri, hu in host_uuids.items():
        if hu in seen:
            raise BadInput(f"{uri} and {seen[hu]} are the same host (host UUID {hu})",
                           hint="give each host once")
        seen[hu] = uri


def check_transport(*uris: str, allow_plaintext: bool) -> None:
    """Refuse (Blocked) before any value is read when a connection carrying it is unprotected."""
    if allow_plaintext:
        return
    for uri in uris:
        risk = uri_facts(uri).risk
        if risk:
            raise Blocked(f"secret values would cross the network unencrypted or unauthenticated over {uri} ({risk})",
                          hint="use qemu+tls:// or qemu+ssh:// with verification on, "
                               "or pass --allow-plaintext-secrets",
                          check_id="SECRET-PLAINTEXT-TRANSPORT")


@functools.lru_cache(maxsize=64)  # NOTE: asked per secret plan (thousands in an evacuation plan)
def values_may_cross(*uris: str, allow_plaintext: bool) -> bool:
    """``check_transport`` as a predicate."""
    try:
        check_transport(*uris, allow_plaintext=allow_plaintext)
    except Blocked:
        return False
    return True
