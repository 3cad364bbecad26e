"""Issue #12 on the real lab: what the transport rule, host identity, key helpers and a full disk
do to real runs. (Unit tests cover the pure rules; these prove them end to end.)"""
from __future__ import annotations

import json

from labkit.client import assert_no_value

# ``names=True`` (the migcoord fixture): the lab hosts reached by NAME, qemu+tcp://src/system etc., which the
# transport rule (rightly) counts as remote: a real plaintext channel to a real libvirtd.


def test_evacuate_dry_run_over_plaintext_reads_no_value(clean, name, migcoord):
    """The destination holds the secret with a DIFFERENT value. Reading both values (what the old
    plan did over plaintext) yields SECRET-VALUE-MISMATCH; with the rule enforced where values are
    read, only SECRET-PLAINTEXT-TRANSPORT blocks and no value-derived verdict appears."""
    lab = clean
    vm = lab.vm(name, on="src")  # a readable (private=no) vTPM secret on the source
    lab.define_secret("dst", vm["secret"], "vtpm", f"{name}-vtpm", b"a different value", private=False)
    before = (lab.secret_uuids("src"), lab.secret_uuids("dst"), lab.where(name))

    def dry(src: str, dst: str, *extra: str, names: bool) -> dict:
        r = migcoord("evacuate", "--dry-run", "--json", "--from", src, "--to", dst, *extra, names=names, timeout=240)
        assert r.returncode == 1, r.stderr_text  # the domain cannot be placed either way
        return json.loads(r.stdout)

    plaintext = dry("qemu+tcp://src/system", "qemu+tcp://dst/system", names=True)
    blockers = plaintext["blockers"][name]["qemu+tcp://dst/system"]
    assert "SECRET-PLAINTEXT-TRANSPORT" in blockers
    assert "SECRET-VALUE-MISMATCH" not in blockers  # no value was read on either host
    assert "match" not in json.dumps(plaintext) and "value-mismatch" not in json.dumps(plaintext)

    # Controls: the same hosts over loopback, or with the explicit override, do read and compare.
    local = dry(lab.uri("src"), lab.uri("dst"), names=False)
    assert "SECRET-VALUE-MISMATCH" in local["blockers"][name][lab.uri("dst")]
    allowed = dry("qemu+tcp://src/system", "qemu+tcp://dst/system", "--allow-plaintext-secrets", names=True)
    assert "SECRET-VALUE-MISMATCH" in allowed["blockers"][name]["qemu+tcp://dst/system"]
    assert (lab.secret_uuids("src"), lab.secret_uuids("dst"), lab.where(name)) == before


def test_check_over_plaintext_reads_no_value(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src")
    lab.define_secret("dst", vm["secret"], "vtpm", f"{name}-vtpm", b"a different value", private=False)
    r = migcoord("check", name, "--json", "--from", "qemu+tcp://src/system", "--to", "qemu+tcp://dst/system",
                 names=True, timeout=240)
    assert r.returncode == 1, r.stderr_text
    report = json.loads(r.stdout)
    assert "SECRET-PLAINTEXT-TRANSPORT" in report["blocking"]
    assert "SECRET-VALUE-MISMATCH" not in report["blocking"]


def test_two_spellings_of_one_destination_are_one_host(clean, name, migcoord):
    lab = clean
    lab.vm(name, on="src")
    dst = lab.uri("dst")
    same = dst.replace("/system", "").rstrip("/") + ":16509/system"
    for dsts in ([dst, same], [lab.uri("src").replace("/system", ":16509/system")]):
        r = migcoord("evacuate", "--dry-run", "--from", lab.uri("src"), *[a for d in dsts for a in ("--to", d)],
                     timeout=240)
        assert r.returncode == 2, r.stderr_text
        err = r.stderr_text
        assert "same host" in err and err.count("\n") == 1 and "Traceback" not in err
    assert lab.where(name) == {"src": "running"}


def test_secret_command_tokens_never_recorded(clean, name, migcoord, tmp_path):
    """A private source secret, its value from a helper whose argv carries a token: the migration
    works, and the journal, JSON output and events name the helper (argv[0]) only."""
    lab = clean
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    vm = lab.vm(name, on="src", secret="private", keyfile=keys / "value")
    helper = tmp_path / "helper"
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = --token=TOKEN-hunter2 ] && exec cat {keys / 'value'}\nexit 9\n")
    helper.chmod(0o700)
    journal = migcoord.journal
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json",
                 "--secret-command", f"{helper} --token=TOKEN-hunter2 {{uuid}}", timeout=240)
    assert r.returncode == 0, r.stderr_text
    assert lab.where(name) == {"dst": "running"}
    assert lab.digest("dst", vm["secret"]) == lab.digest("src", vm["secret"])  # the helper's value, provisioned
    blobs = (r.stdout, r.stderr, journal.read_bytes())
    for blob in blobs:
        assert b"TOKEN-hunter2" not in blob
    assert f"command:{helper}".encode() in journal.read_bytes()
    assert_no_value((keys / "value").read_bytes(), *blobs)


def test_full_journal_disk_is_a_warning_and_the_outcome_is_printed(clean, name, migcoord, tmp_path):
    lab = clean
    lab.vm(name, on="src")
    report = tmp_path / "report.json"
    r = migcoord("evacuate", "--from", lab.uri("src"), "--to", lab.uri("dst"), "--journal", "/dev/full",
                 "--report", str(report), timeout=240)
    out, err = r.stdout_text, r.stderr_text
    assert r.returncode == 0, err
    assert "1 of 1 moved" in out
    assert "Traceback" not in err
    assert "journal /dev/full" in err and "No space left on device" in err
    assert json.loads(report.read_text())["exit_code"] == 0
    assert lab.where(name) == {"dst": "running"}
