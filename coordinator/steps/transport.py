"""The transport rule as the flows, the steps and the checks apply it: ``core.uris``' reading of each
URI plus, for ``qemu+ssh://``, what the operator's OpenSSH client config makes of it (``ssh -G``,
issue #21). The SSH seam is imported only when such a URI is judged, so a run without one never
loads it (start-up, issue #15)."""
from __future__ import annotations

from coordinator.core import uris
from coordinator.core.uris import UriFacts


def openssh_client_risk(f: UriFacts) -> str | None:
    from coordinator.ssh.openssh import client_risk  # NOTE: here: only an OpenSSH URI needs the seam

    return client_risk(f)


def check_transport(*uri: str, allow_plaintext: bool) -> None:
    """``core.uris.check_transport`` with the OpenSSH client's config judged too (Blocked)."""
    uris.check_transport(*uri, allow_plaintext=allow_plaintext, ssh_client=openssh_client_risk)


def values_may_cross(*uri: str, allow_plaintext: bool) -> bool:
    """``check_transport`` as a predicate (cached per URI pair in ``core.uris``)."""
    return uris.values_may_cross(*uri, allow_plaintext=allow_plaintext, ssh_client=openssh_client_risk)
