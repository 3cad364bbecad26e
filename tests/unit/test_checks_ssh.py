"""checks.ssh: the pure parsers of the SSH checks (swtpm capabilities, df, shared filesystems, TPM state
directory), how the SSH checks are registered, and that they skip without SSH."""
from __future__ import annotations

import pytest
from check_fakes import context, target

from checks import ssh
from checks.registry import REGISTRY
from checks.ssh import (DiskFree, missing_features, parse_capabilities, parse_df, required_features,
                        tpm_state_dir)
from coordinator.core.domain.facts import TpmFacts

SSH_IDS = ("SWTPM-MISSING", "SWTPM-CAPABILITIES", "SWTPM-VERSION-OLDER", "TPM-STATE-SPACE",
           "SECRET-AT-REST-UNENCRYPTED")


CAPS_071 = ('{ "type": "swtpm", "features": [ "tpm-1.2", "tpm-2.0", "tpm-send-command-header", '
            '"flags-opt-startup", "cmdarg-seccomp", "cmdarg-key-fd", "cmdarg-pwd-fd", "cmdarg-print-states", '
            '"nvram-backend-dir", "nvram-backend-file" ], "version": "0.7.1" }')
CAPS_090 = ('{ "type": "swtpm", "features": [ "tpm-2.0", "cmdarg-pwd-fd", "cmdarg-migration" ], '
            '"version": "0.9.0" }')
CAPS_OLD = '{ "type": "swtpm", "features": [ "cmdarg-seccomp", "cmdarg-key-fd" ] }'


@pytest.mark.parametrize("text,tpm_versions,shared,missing", [
    (CAPS_071, ("2.0",), False, ()),
    (CAPS_071, (None,), False, ()),
    (CAPS_071, ("1.2",), False, ()),
    (CAPS_071, ("2.0",), True, ("cmdarg-migration",)),
    (CAPS_090, ("2.0",), True, ()),
    (CAPS_090, ("1.2",), False, ("tpm-1.2",)),
    (CAPS_OLD, ("2.0",), False, ("tpm-2.0", "cmdarg-pwd-fd")),
])
def test_swtpm_features_the_guest_needs_that_are_missing_are_named(text, tpm_versions, shared, missing):
    caps = parse_capabilities(text)
    assert missing_features(caps, required_features(tpm_versions, shared)) == missing


def test_capabilities_version_and_garbage():
    assert parse_capabilities(CAPS_071).version == "0.7.1"
    assert parse_capabilities(CAPS_OLD).version is None
    for bad in ("", "swtpm: unknown option", "[1, 2]", '{"type": "swtpm"}'):
        with pytest.raises(ValueError):
            parse_capabilities(bad)


DF_EXT4 = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda1         41152736 12345678  26693420      32% /
"""
DF_SPACES = """Filesystem                 1024-blocks  Used Available Capacity Mounted on
//nas/tpm share                 1048576 1000000     48576      96% /mnt/tpm state
"""
DF_TMPFS = """Filesystem     1024-blocks  Used Available Capacity Mounted on
tmpfs                 1024     0      1024       0% /var/lib/libvirt/swtpm
"""
DF_NOCAP = """Filesystem 1024-blocks Used Available Capacity Mounted on
overlay 100 0 0 - /
"""


@pytest.mark.parametrize("text,expected", [
    (DF_EXT4, ("/dev/vda1", 41152736, 26693420, "/")),
    (DF_SPACES, ("//nas/tpm share", 1048576, 48576, "/mnt/tpm state")),
    (DF_TMPFS, ("tmpfs", 1024, 1024, "/var/lib/libvirt/swtpm")),
    (DF_NOCAP, ("overlay", 100, 0, "/")),
])
def test_parse_df(text, expected):
    assert parse_df(text) == DiskFree(*expected)


@pytest.mark.parametrize("text", ["", "df: /nope: No such file or directory\n",
                                  "Filesystem 1K-blocks Used Available Use% Mounted on\n"])
def test_parse_df_garbage(text):
    with pytest.raises(ValueError):
        parse_df(text)


@pytest.mark.parametrize("xml,expected", [
    (None, "/var/lib/libvirt/swtpm"),
    ("<domain><devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm></devices></domain>",
     "/var/lib/libvirt/swtpm"),
    ("<domain><devices><tpm><backend type='emulator'><source type='dir' path='/shared/tpm/vm1'/>"
     "</backend></tpm></devices></domain>", "/shared/tpm/vm1"),
    ("<domain><devices><tpm><backend type='emulator'><source type='file' path='/shared/tpm/vm1.img'/>"
     "</backend></tpm></devices></domain>", "/shared/tpm"),
    ("<domstatus><domain><devices><tpm><backend type='emulator'><source type='dir' path='/s'/></backend>"
     "</tpm></devices></domain></domstatus>", "/s"),
    ("<not xml", "/var/lib/libvirt/swtpm"),
])
def test_tpm_state_dir(xml, expected):
    assert tpm_state_dir(xml) == expected


def test_ssh_checks_registered_with_transport_ssh():
    assert set(SSH_IDS) <= set(REGISTRY.checks)
    ids = {"SWTPM-MISSING": "error", "SWTPM-CAPABILITIES": "error", "SWTPM-VERSION-OLDER": "error",
           "TPM-STATE-SPACE": "error", "SECRET-AT-REST-UNENCRYPTED": "warning"}
    for cid, sev in ids.items():
        c = REGISTRY.checks[cid]
        assert (c.transport, c.severity) == ("ssh", sev) and c.hint and c.summary


def test_ssh_checks_skip_without_runner():
    t = target("vm", "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>")
    assert t.facts.tpms == (TpmFacts("tpm-crb", "emulator", "2.0"),)
    ctx = context([t], dst_uri="qemu+tcp://hv2/system")  # remote, no SSH configured: no runner
    results = [ssh.swtpm_missing(ctx), ssh.swtpm_version_older(ctx), ssh.swtpm_capabilities(ctx, t),
               ssh.tpm_state_space(ctx, t), ssh.secret_at_rest(ctx, t)]
    assert {(r.status, r.message) for r in results} == {("skipped", "SSH not configured")}


@pytest.mark.parametrize("conf, want", [
    ("", (None, "/var/lib/libvirt/secrets/secrets-encryption-key")),
    ("#encrypt_data = 0\n", (None, "/var/lib/libvirt/secrets/secrets-encryption-key")),
    ("encrypt_data = 0\n", (False, "/var/lib/libvirt/secrets/secrets-encryption-key")),
    ('encrypt_data = 1\nsecrets_encryption_key = "/etc/k"  # ours\n', (True, "/etc/k")),
])
def test_secret_conf_encryption_settings(conf, want):
    assert ssh.encryption_settings(conf) == want


@pytest.mark.parametrize("version, encrypt, key, want", [
    (9_000_000, None, True, False),     # before 12.1: always plain base64
    (12_008_000, None, False, False),   # 12.8 without a key (the lab: no systemd-creds): plain, measured
    (12_008_000, None, True, True),
    (12_008_000, False, True, False),   # encrypt_data = 0
    (12_001_000, True, True, True),
])
def test_secrets_are_encrypted_at_rest_only_with_a_key(version, encrypt, key, want):
    assert ssh.encrypts_at_rest(version, encrypt, key) is want
