"""Pure facts about libvirt URIs: which transport, and whether it is encrypted.

The transport rule (a secret value never crosses a plaintext remote transport without
``--allow-plaintext-secrets``) is decided here and only here.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import BadInput

# libvirt transports that protect the stream: local UNIX socket, TLS, and SSH tunnels.
_ENCRYPTED = {"unix", "tls", "ssh", "libssh", "libssh2", "ext"}


@dataclass(frozen=True)
class UriFacts:
    uri: str
    driver: str
    transport: str  # "unix" (local), "tls", "tcp", "ssh", ...
    host: str | None

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
    return UriFacts(uri=uri, driver=driver, transport=transport, host=host)
