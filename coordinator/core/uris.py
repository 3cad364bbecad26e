"""Pure facts about libvirt URIs: is it one, which transport, which host, is it encrypted.

The one place that parses a libvirt URI. The transport rule (a secret value never crosses a
plaintext remote transport without ``--allow-plaintext-secrets``) is decided here and only here.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import BadInput, Blocked

# libvirt transports that protect the stream: local UNIX socket, TLS, and SSH tunnels.
_ENCRYPTED = {"unix", "tls", "ssh", "libssh", "libssh2", "ext"}
# libvirt transports whose URI port (and user) are the SSH ones.
_SSH_TRANSPORTS = {"ssh", "libssh", "libssh2"}
_URI_RE = re.compile(r"^qemu(\+[a-z0-9]+)?://[^/\s]*/(system|session)(\?\S*)?$")


def check_uri(uri: str) -> str:
    """Reject what cannot be a QEMU libvirt URI before any connection attempt."""
    if not _URI_RE.match(uri or ""):
        raise BadInput(f"not a libvirt QEMU URI: {uri!r}",
                       hint="use e.g. qemu:///system, qemu+ssh://HOST/system, qemu+tls://HOST/system")
    return uri


@dataclass(frozen=True)
class UriFacts:
    uri: str
    driver: str
    transport: str  # "unix" (local), "tls", "tcp", "ssh", ...
    host: str | None
    user: str | None = None
    port: int | None = None

    @property
    def is_loopback(self) -> bool:
        """No host, or a host on this machine: traffic never leaves the kernel."""
        if not self.host or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def plaintext_remote(self) -> bool:
        """True when secret bytes sent over this connection would cross a network unencrypted."""
        return self.transport not in _ENCRYPTED and not self.is_loopback


def uri_facts(uri: str) -> UriFacts:
    parts = urlsplit(uri)
    if "://" not in uri or not parts.scheme:
        raise BadInput(f"not a libvirt URI: {uri!r}", hint="e.g. qemu+ssh://HOST/system")
    driver, _, transport = parts.scheme.partition("+")
    host = parts.hostname
    if not transport:
        # NOTE: libvirt defaults to TLS for a remote host and to the UNIX socket without one.
        transport = "tls" if host else "unix"
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"bad port in URI {uri!r}") from None
    return UriFacts(uri=uri, driver=driver, transport=transport, host=host, user=parts.username or None,
                    port=port)


def ssh_target(uri: str) -> tuple[str, str | None, int | None] | None:
    """(host, user, port) to reach a libvirt URI's host over SSH; None for a local URI.

    The user and port in the URI are SSH's only for ssh transports (``qemu+ssh://u@h:2222/system``);
    for ``qemu+tcp://h:16509`` the port is libvirt's, so SSH's own defaults apply."""
    parts = urlsplit(uri)
    if "://" not in uri or not parts.scheme:
        raise BadInput(f"not a libvirt URI: {uri!r}", hint="e.g. qemu+ssh://HOST/system")
    if not parts.hostname:
        return None
    f = uri_facts(uri)
    assert f.host is not None
    if f.transport in _SSH_TRANSPORTS:
        return f.host, f.user, f.port
    return f.host, None, None


def same_host_message(src_uri: str, dst_uri: str, src_host_uuid: str, dst_host_uuid: str) -> str | None:
    """Why these two connections are one host (equal host UUIDs: libvirt refuses such a
    migration), or None. Shared by the HOST-SAME check and ``migrate``'s early refusal."""
    if src_host_uuid != dst_host_uuid:
        return None
    return f"{dst_uri} is the same host as {src_uri} (host UUID {src_host_uuid})"


def check_transport(*uris: str, allow_plaintext: bool) -> None:
    """Refuse (Blocked) before any value is read when a connection carrying it is plaintext."""
    for uri in uris:
        if uri_facts(uri).plaintext_remote and not allow_plaintext:
            raise Blocked(f"secret values would cross the network unencrypted over {uri}",
                          hint="use qemu+tls:// or qemu+ssh://, or pass --allow-plaintext-secrets",
                          check_id="SECRET-PLAINTEXT-TRANSPORT")
