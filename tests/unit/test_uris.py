"""coordinator.core.uris: URI check and facts, the SSH target of a URI, the same-host message, and the
plaintext-transport rule."""
from __future__ import annotations

import pytest

from coordinator.core.errors import BadInput, Blocked
from coordinator.core import uris
from coordinator.core.uris import (check_endpoints, check_uri, distinct_hosts, same_host_message, ssh_client_risk,
                                   ssh_target, uri_facts)


def check_transport(*u: str, allow_plaintext: bool) -> None:
    """The rule with an OpenSSH client at its defaults (what ``ssh -G`` prints without a config)."""
    uris.check_transport(*u, allow_plaintext=allow_plaintext, ssh_client=lambda f: ssh_client_risk(f, {})[0])


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
    assert (f.risk is not None) is plaintext  # a reason the channel would expose secret bytes


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


# -- issue #12: channels that look protected but are not ------------------------------------------

@pytest.mark.parametrize("uri, reason", [
    ("qemu+tls://h.invalid/system?no_verify=1", "no_verify=1"),
    ("qemu://h.invalid/system?no_verify=1", "no_verify=1"),
    ("qemu+ssh://h.invalid/system?no_verify=1", "no_verify=1"),
    ("qemu+ssh://h.invalid/system?NO_VERIFY=1", "NO_VERIFY"),
    ("qemu+ssh://h.invalid/system?no%5Fverify=1", "no_verify=1"),
    ("qemu+libssh2://h.invalid/system?known_hosts_verify=ignore", "known_hosts_verify=ignore"),
    ("qemu+libssh://h.invalid/system?known_hosts_verify=auto", "known_hosts_verify=auto"),
    ("qemu+ssh://h.invalid/system?command=/opt/myssh", "command="),
    ("qemu+ssh://localhost/system?command=/opt/myssh", "command="),  # the program may go anywhere
    ("qemu+ext://h.invalid/system?command=/bin/nc", "qemu+ext"),
    ("qemu+ext:///system?command=/bin/nc", "qemu+ext"),          # no host, but the command goes anywhere
    ("qemu+tls://h.invalid/system?tls_priority=NONE:+NULL", "tls_priority"),
    ("qemu+tcp://h.invalid/system", "plaintext"),
])
def test_unprotected_channels_are_refused(uri, reason):
    assert uri_facts(uri).risk is not None
    with pytest.raises(Blocked, match="SECRET|unencrypted") as ei:
        check_transport("qemu:///system", uri, allow_plaintext=False)
    assert reason.split("=")[0].lower() in str(ei.value).lower()
    assert check_transport("qemu:///system", uri, allow_plaintext=True) is None


@pytest.mark.parametrize("uri", [
    "qemu+tls://h.invalid/system?no_verify=0",
    "qemu+libssh2://h.invalid/system?known_hosts_verify=normal&known_hosts=/kh",
    "qemu+ssh://h.invalid/system?keyfile=/k&no_tty=1",
    "qemu+tcp://127.1/system",                 # inet_aton spellings of loopback are loopback
    "qemu+tcp://2130706433/system",
    "qemu+tcp://[::ffff:127.0.0.1]/system",
    "qemu+tcp://0.0.0.0/system",
    "qemu+tls://127.0.0.1/system?no_verify=1",  # never leaves this machine
    "qemu+tcp://127.0.0.101/system?no_verify=1",
])
def test_protected_or_local_channels_pass(uri):
    assert uri_facts(uri).risk is None
    check_transport(uri, allow_plaintext=False)


@pytest.mark.parametrize("uri", ["qemu+tcp://[::1/system", "qemu+tcp://h.invalid:99999/system",
                                 "qemu+tcp://h.invalid:x/system", "qemu+tcp://h\x00/system",
                                 "qemu+tcp://[zz::1]/system"])
def test_malformed_host_or_port_is_bad_input(uri):
    with pytest.raises(BadInput):
        check_uri(uri)


# -- issue #12: the destination URI is resolved by the source daemon ------------------------------

@pytest.mark.parametrize("src, dst, ok", [
    ("qemu+tcp://127.0.0.101/system", "qemu+tcp://127.0.0.102/system", True),   # the lab: one view
    ("qemu:///system", "qemu+tls://hv2.invalid/system", True),
    ("qemu+tls://hv1.invalid/system", "qemu+tls://hv2.invalid/system", True),
    ("qemu+tls://hv1.invalid/system", "qemu+tcp://localhost/system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+tcp://127.0.0.5/system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+tcp://127.1/system", False),
    ("qemu+tls://hv1.invalid/system", "qemu:///system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+unix:///system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+ssh://localhost./system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+tls://foo.localhost/system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+tcp://[::1]/system", False),
    ("qemu+tls://hv1.invalid/system", "qemu+tcp://0.0.0.0/system", False),
])
def test_loopback_destination_with_remote_source_is_refused(src, dst, ok):
    if ok:
        check_endpoints(src, [dst])
    else:
        with pytest.raises(BadInput, match="names this machine"):
            check_endpoints(src, [dst])


@pytest.mark.parametrize("src, dsts, match", [
    ("qemu:///system", [], "no destination"),
    ("qemu:///system", ["qemu:///system"], "is the source"),
    ("qemu+tls://a.invalid/system", ["qemu+tls://b.invalid/system"] * 2, "twice"),
    ("qemu+tls://a.invalid/system", ["http://b/system"], "not a libvirt"),
])
def test_check_endpoints_rejects(src, dsts, match):
    with pytest.raises(BadInput, match=match):
        check_endpoints(src, dsts)


def test_two_spellings_of_one_host_are_refused():
    distinct_hosts({"qemu+tls://a/system": "u1", "qemu+tls://b/system": "u2"})
    with pytest.raises(BadInput, match="same host") as ei:
        distinct_hosts({"qemu+tls://a/system": "u1", "qemu+tcp://b/system": "u2",
                        "qemu+tcp://b:16509/system": "u2"})
    assert "qemu+tcp://b:16509/system and qemu+tcp://b/system" in str(ei.value)


@pytest.mark.parametrize("uri, ssh, want", [
    ("qemu:///system", False, True),                    # local: commands run here
    ("qemu+tcp://hv2.example/system", False, False),    # remote without SSH: nowhere
    ("qemu+tcp://hv2.example/system", True, True),      # remote with SSH: over SSH
])
def test_commands_run_here_or_over_ssh_and_nowhere_on_a_remote_host_without_it(uri, ssh, want):
    from coordinator.core.uris import runs_commands

    assert runs_commands(uri, ssh) is want
