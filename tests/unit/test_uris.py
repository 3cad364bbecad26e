"""coordinator.core.uris: URI check and facts, the SSH target of a URI, the same-host message, and the
plaintext-transport rule."""
from __future__ import annotations

import pytest

from coordinator.core.errors import BadInput, Blocked
from coordinator.core.uris import check_transport, check_uri, same_host_message, ssh_target, uri_facts


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


# -- check_uri -------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["qemu:///system", "qemu:///session", "qemu+ssh://root@h:2222/system",
                                 "qemu+tls://h/system", "qemu+tcp://127.0.0.1/system?x=y"])
def test_check_uri_accepts(uri):
    assert check_uri(uri) == uri


@pytest.mark.parametrize("uri", ["http://h/system", "qemu://h", "", "qemu:///nonsense", "xen:///system",
                                 "qemu+ssh://h /system", None])
def test_check_uri_rejects(uri):
    with pytest.raises(BadInput) as ei:
        check_uri(uri)
    assert repr(uri) in str(ei.value)


# -- ssh_target -------------------------------------------------------------------------------

@pytest.mark.parametrize("uri,expected", [
    ("qemu:///system", None),
    ("qemu:///session", None),
    ("qemu+unix:///system", None),
    ("qemu+ssh://hv2/system", ("hv2", None, None)),
    ("qemu+ssh://admin@hv2:2222/system", ("hv2", "admin", 2222)),
    ("qemu+libssh2://root@127.0.0.52/system?keyfile=/k&known_hosts=/kh", ("127.0.0.52", "root", None)),
    ("qemu+tcp://127.0.0.52/system", ("127.0.0.52", None, None)),
    ("qemu+tcp://hv2:16509/system", ("hv2", None, None)),   # libvirt's port, not SSH's
    ("qemu+tls://bob@hv3/system", ("hv3", None, None)),      # not an SSH user either
    ("qemu+ssh://[fd00::5]:2200/system", ("fd00::5", None, 2200)),
])
def test_ssh_target(uri, expected):
    assert ssh_target(uri) == expected


def test_ssh_target_bad_uri():
    with pytest.raises(BadInput):
        ssh_target("hv2")


# -- same_host_message --------------------------------------------------------------------------

@pytest.mark.parametrize("src_uuid, dst_uuid, same", [("h1", "h2", False), ("h1", "h1", True)])
def test_same_host_message(src_uuid, dst_uuid, same):
    msg = same_host_message("qemu:///system", "qemu+ssh://hv2/system", src_uuid, dst_uuid)
    if same:
        assert msg == "qemu+ssh://hv2/system is the same host as qemu:///system (host UUID h1)"
    else:
        assert msg is None
