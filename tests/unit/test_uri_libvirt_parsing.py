"""coordinator.core.uris reads a URI the way libvirt does (issue #21): virURIParse → libxml2's
xmlParseURI (the host and user percent-decoded, the query kept raw) → virURIParseParams (parameters
split on ``&``, or on ``;`` when the rest has no ``&``; names and values percent-decoded, cut at a
decoded NUL) → the remote driver's case-insensitive parameter names. Read in libvirt 9.0 and 11.3
(src/util/viruri.c, src/remote/remote_driver.c) and libxml2 2.9.14 / 2.12-2.14 (uri.c)."""
from __future__ import annotations

import pytest

from coordinator.core.errors import BadInput, Blocked
from coordinator.core.uris import check_uri, uri_facts


def judge(uri: str) -> str | None:
    return uri_facts(uri).risk


# -- item 1: ';' separates parameters too ----------------------------------------------------------

@pytest.mark.parametrize("uri, named", [
    ("qemu+ssh://h.invalid/system?x=y;no_verify=1", "no_verify"),
    ("qemu+ssh://h.invalid/system?x=y;command=/opt/other-ssh", "command"),
    ("qemu+libssh2://h.invalid/system?x=y;known_hosts_verify=ignore", "known_hosts_verify"),
    ("qemu+libssh://h.invalid/system?known_hosts=/kh;known_hosts_verify=auto", "known_hosts_verify"),
    ("qemu+tls://h.invalid/system?x=y;no_verify=1", "no_verify"),
    ("qemu://h.invalid/system?;no_verify=1", "no_verify"),
    ("qemu+tls://h.invalid/system?x=y;tls_priority=NORMAL:+ANON-DH", "tls_priority"),
])
def test_semicolon_separated_weakening_parameters_are_refused(uri, named):
    risk = judge(uri)
    assert risk is not None and named in risk


def test_params_split_exactly_as_virURIParseParams():
    from coordinator.core.uris import libvirt_params  # new in #21

    # '&' anywhere in the rest wins; ';' only separates when no '&' is left
    assert libvirt_params("a=1;b=2") == [("a", "1"), ("b", "2")]
    assert libvirt_params("a=1;b=2&c=3") == [("a", "1;b=2"), ("c", "3")]
    assert libvirt_params("a&&=v&b=&c") == [("a", ""), ("b", ""), ("c", "")]   # "=v" is ignored
    assert libvirt_params("no%5Fverify=%31") == [("no_verify", "1")]
    assert libvirt_params("no_verify%00junk=1%00x") == [("no_verify", "1")]     # C strings end at NUL
    assert libvirt_params("a+b=c+d") == [("a+b", "c+d")]                        # '+' is not a space


def test_an_interpretation_that_splits_on_both_separators_is_judged_too():
    # libvirt 9.0/11.3 read "x=1;no_verify=1" as x's value here; a reading that splits on ';' as well
    # would switch verification off: ambiguous, so refused.
    assert "no_verify" in (judge("qemu+ssh://h.invalid/system?x=1;no_verify=1&y=2") or "")


@pytest.mark.parametrize("uri, named", [
    ("qemu+ssh://h.invalid/system?no_verify%00x=1", "no_verify"),       # the name is cut at the NUL
    ("qemu+tls://h.invalid/system?no_verify=1%00", "no_verify"),
    ("qemu+tls://h.invalid/system?no_verify=+1", "no_verify"),            # strtol takes a sign
    ("qemu+tls://h.invalid/system?no_verify=%201", "no_verify"),          # and leading blanks
    ("qemu+tls://h.invalid/system?No_Verify=7", "no_verify"),
    ("qemu+tls://h.invalid/system?no_verify=yes", "no_verify"),           # libvirt refuses it: ambiguous
    ("qemu+tls://h.invalid/system?no_verify=0&no_verify=0", "twice"),     # repeated: refused (held)
    ("qemu+ssh://h.invalid/system?name=qemu%2Btcp://other.invalid/system", "name="),
])
def test_other_spellings_libvirt_reads_as_weakening_are_refused(uri, named):
    risk = judge(uri)
    assert risk is not None and named in risk


@pytest.mark.parametrize("uri", [
    "qemu+tls://h.invalid/system?no_verify=00",     # strtol: 0
    "qemu+tls://h.invalid/system?no_verify=-0",
    "qemu+tls://h.invalid/system?no_verify=0",
    "qemu+ssh://h.invalid/system?name=qemu:///system",
    "qemu+libssh2://h.invalid/system?known_hosts_verify=NORMAL",
    "qemu+ssh://h.invalid/system?keyfile=/k;no_tty=1",
])
def test_spellings_libvirt_reads_as_verified_pass(uri):
    assert judge(uri) is None


@pytest.mark.parametrize("uri", [
    "qemu+ssh://h.invalid/system?command=/bin/a%zz",    # not a percent escape: libxml2 refuses the URI
    "qemu+ssh://h.invalid/system?x=a|b",                # not a query character
    "qemu+ssh://h.invalid:/system",                     # a ':' without a port
    "qemu+ssh://h%zz.invalid/system",
])
def test_what_libvirt_cannot_parse_is_bad_input(uri):
    with pytest.raises(BadInput):
        check_uri(uri)


# -- item 2: the host is percent-decoded before it is judged ------------------------------------------

@pytest.mark.parametrize("uri, host", [
    ("qemu+tcp://127.0.0.1%2eevil.invalid/system", "127.0.0.1.evil.invalid"),
    ("qemu+tcp://127.0.0.1%2Eevil.invalid:16509/system", "127.0.0.1.evil.invalid"),
    ("qemu+tcp://localhost%2eevil.invalid/system", "localhost.evil.invalid"),
    ("qemu+tcp://[::1%25eth0]/system", "::1%eth0"),
    ("qemu+tcp://[::1%eth0]/system", "::1%eth0"),
])
def test_percent_in_the_host_is_decoded_and_never_loopback(uri, host):
    f = uri_facts(uri)
    assert f.host == host
    assert not f.is_loopback
    assert f.risk is not None
    with pytest.raises(Blocked, match="tcp is plaintext"):
        from coordinator.core.uris import check_transport
        check_transport(uri, allow_plaintext=False, ssh_client=lambda f: None)


@pytest.mark.parametrize("uri", [
    "qemu+tcp://%31%32%37.0.0.1/system",       # percent-encoded loopback: refused (held)
    "qemu+tcp://%6cocalhost/system",
    "qemu+tcp://[::1%25lo]/system",            # a zone id: refused (held)
    "qemu+tcp://localhost./system",            # held
    "qemu+tcp://127.0.0.1./system",            # held
])
def test_held_loopback_spellings_stay_unexempt_but_name_this_machine(uri):
    f = uri_facts(uri)
    assert not f.is_loopback and f.risk is not None
    assert f.may_be_this_machine


def test_decoded_user_is_what_libvirt_passes_to_ssh():
    f = uri_facts("qemu+ssh://ad%6din@h.invalid:2222/system")
    assert (f.user, f.host, f.port) == ("admin", "h.invalid", 2222)


@pytest.mark.parametrize("uri", ["QEMU+TCP://127.0.0.1/system", "Qemu:///system", "qemu+TCP://h/system"])
def test_uppercase_scheme_is_refused(uri):  # held
    with pytest.raises(BadInput):
        check_uri(uri)
