"""coordinator.uris facts and the plaintext-transport rule in coordinator.secrets."""
from __future__ import annotations

import pytest

from coordinator.core.errors import BadInput, Blocked
from coordinator.core.uris import check_transport
from coordinator.core.uris import uri_facts


@pytest.mark.parametrize("uri, transport, host, loopback, plaintext", [
    ("qemu:///system", "unix", None, True, False),
    ("qemu+tcp://127.0.0.12/system", "tcp", "127.0.0.12", True, False),
    ("qemu+tcp://localhost/system", "tcp", "localhost", True, False),
    ("qemu+tcp://[::1]/system", "tcp", "::1", True, False),
    ("qemu+tcp://10.0.0.5/system", "tcp", "10.0.0.5", False, True),
    ("qemu+tcp://hv1.example/system", "tcp", "hv1.example", False, True),
    ("qemu://hv1/system", "tls", "hv1", False, False),
    ("qemu+tls://hv1/system", "tls", "hv1", False, False),
    ("qemu+ssh://root@hv1/system", "ssh", "hv1", False, False),
    ("qemu+libssh2://hv1/system", "libssh2", "hv1", False, False),
    ("qemu+unix:///system", "unix", None, True, False),
])
def test_uri_facts(uri, transport, host, loopback, plaintext):
    f = uri_facts(uri)
    assert (f.uri, f.driver, f.transport, f.host) == (uri, "qemu", transport, host)
    assert f.is_loopback is loopback
    assert f.plaintext_remote is plaintext


@pytest.mark.parametrize("uri", ["nonsense", "", "/system"])
def test_uri_facts_rejects(uri):
    with pytest.raises(BadInput):
        uri_facts(uri)


def test_check_transport_blocks_plaintext_remote():
    uri = "qemu+tcp://10.0.0.5/system"
    with pytest.raises(Blocked) as ei:
        check_transport("qemu:///system", uri, allow_plaintext=False)
    assert uri in str(ei.value)
    assert "--allow-plaintext-secrets" in str(ei.value)
    assert ei.value.data["check_id"] == "SECRET-PLAINTEXT-TRANSPORT"


@pytest.mark.parametrize("uris, allow", [
    (("qemu+tcp://10.0.0.5/system",), True),
    (("qemu+tcp://127.0.0.1/system", "qemu+tcp://localhost/system"), False),
    (("qemu+ssh://root@hv1/system", "qemu+tls://hv2/system", "qemu:///system"), False),
])
def test_check_transport_allows(uris, allow):
    assert check_transport(*uris, allow_plaintext=allow) is None
