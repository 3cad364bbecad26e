"""Every secret a domain depends on, confirmed to the byte before migrating (real lab)."""
from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from labkit.client import assert_no_value


def test_vtpm_and_luks_disk_secrets_are_both_provisioned(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src", luks_disk="shared")
    vtpm, disk = vm["secret"], vm["disk_secret"]

    # NOTE: without SSH whether the shared image exists on the destination is unknown: accepted
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--unsafe", "--json",
                 "--accept-unknown")

    assert r.returncode == 0, r.stderr_text
    got = {(s["uuid"], s["kind"], s["usage_type"], s["action"]) for s in json.loads(r.stdout_text)["secrets"]}
    assert got == {(vtpm, "vtpm", "vtpm", "provision"), (disk, "disk-encryption", "volume", "provision")}
    for sid in (vtpm, disk):
        assert lab.digest("dst", sid) == lab.digest("src", sid) is not None
        assert lab.secret_xml("dst", sid) == lab.secret_xml("src", sid)
    assert lab.where(name) == {"dst": "running"}
    for sid in (vtpm, disk):
        assert_no_value(lab.stored_value("src", sid), r.stdout, r.stderr, migcoord.journal.read_bytes())


def test_usage_referenced_disk_secret_is_resolved_and_provisioned(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src", luks_disk="shared", disk_secret_by="usage")

    r = migcoord("secrets", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json")
    assert r.returncode == 0, r.stderr_text
    disk_plan = [p for p in json.loads(r.stdout_text) if p["kind"] == "disk-encryption"]
    assert len(disk_plan) == 1
    assert disk_plan[0]["uuid"] == vm["disk_secret"]  # usage → UUID on the source
    assert disk_plan[0]["usage_id"].endswith(f"{name}.luks") and disk_plan[0]["action"] == "provision"

    # NOTE: without SSH whether the shared image exists on the destination is unknown: accepted
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--unsafe",
                 "--accept-unknown")
    assert r.returncode == 0, r.stderr_text
    assert lab.digest("dst", vm["disk_secret"]) == lab.digest("src", vm["disk_secret"])
    assert lab.where(name) == {"dst": "running"}


def test_wrong_value_on_destination_blocks_before_migration(clean, name, migcoord):
    lab = clean
    sid = lab.vm(name, on="src")["secret"]
    lab.define_secret("dst", sid, "vtpm", f"{name}-vtpm", b"not-the-right-value-0123456789ab")
    dst_digest = lab.digest("dst", sid)

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"))

    assert r.returncode == 1
    msg = r.stderr_text.strip().splitlines()[-1]
    assert sid in msg and lab.uri("src") in msg and lab.uri("dst") in msg and "different value" in msg
    events = [e["event"] for e in migcoord.events()]
    assert "migration-attempt" not in events and "migration-start" not in events
    assert lab.digest("dst", sid) == dst_digest  # untouched
    assert lab.where(name) == {"src": "running"}
    assert_no_value(lab.stored_value("src", sid), r.stdout, r.stderr)
    assert_no_value(b"not-the-right-value-0123456789ab", r.stdout, r.stderr)


def _helper_script(tmp_path, keyfile):
    """A credential helper that prints the key for the UUID it is given (value not in argv)."""
    script = tmp_path / "keyhelper"
    script.write_text(f"#!{sys.executable}\nimport sys\nassert sys.argv[1] == '--uuid'\n"
                      f"sys.stdout.buffer.write(open({str(keyfile)!r}, 'rb').read())\n")
    script.chmod(0o700)
    return script


@pytest.mark.parametrize("source", ["file", "dir", "command", "stdin"])
def test_private_source_secret_is_provisioned_from_an_operator_source(clean, name, migcoord, tmp_path, source):
    lab = clean
    keydir = tmp_path / "keys"
    keydir.mkdir(mode=0o700)
    keyfile = tmp_path / "vtpm.key"
    sid = lab.vm(name, on="src", secret="private", keyfile=keyfile)["secret"]
    value = keyfile.read_bytes()
    args, stdin = [], None
    if source == "file":
        args = ["--secret-file", f"{sid}={keyfile}"]
    elif source == "dir":
        (keydir / sid).write_bytes(value)
        (keydir / sid).chmod(0o600)
        args = ["--secret-dir", str(keydir)]
    elif source == "command":
        args = ["--secret-command", f"{_helper_script(tmp_path, keyfile)} --uuid {{uuid}}"]
    else:
        args, stdin = ["--secret-stdin", sid], value

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json", *args, input=stdin)

    assert r.returncode == 0, r.stderr_text
    plan = json.loads(r.stdout_text)["secrets"][0]
    assert (plan["uuid"], plan["action"], plan["source_status"]) == (sid, "provision", "private")
    assert plan["value_source"].startswith(source)
    assert lab.digest("dst", sid) == lab.digest("src", sid)
    assert "private='yes'" in lab.secret_xml("dst", sid)  # flags mirrored by default
    assert lab.where(name) == {"dst": "running"}
    assert_no_value(value, r.stdout, r.stderr, migcoord.journal.read_bytes())


def test_key_file_readable_by_others_is_refused(clean, name, migcoord, tmp_path):
    lab = clean
    keyfile = tmp_path / "vtpm.key"
    sid = lab.vm(name, on="src", secret="private", keyfile=keyfile)["secret"]
    keyfile.chmod(0o644)

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"),
                 "--secret-file", f"{sid}={keyfile}")

    assert r.returncode == 2
    assert str(keyfile) in r.stderr_text and "0644" in r.stderr_text and "chmod 600" in r.stderr_text
    assert sid not in lab.secret_uuids("dst")
    assert lab.where(name) == {"src": "running"}


def test_missing_key_file_is_a_usage_error(clean, name, migcoord, tmp_path):
    lab = clean
    sid = lab.vm(name, on="src", secret="private")["secret"]
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"),
                 "--secret-file", f"{sid}={tmp_path / 'nope.key'}")
    assert r.returncode == 2 and "nope.key" in r.stderr_text and "does not exist" in r.stderr_text
    assert lab.where(name) == {"src": "running"} and sid not in lab.secret_uuids("dst")


def test_value_with_trailing_newline_is_taken_exactly_with_a_warning(clean, name, migcoord, tmp_path):
    lab = clean
    keyfile = tmp_path / "vtpm.key"
    sid = lab.vm(name, on="src", secret="private", keyfile=keyfile)["secret"]
    # The classic mistake: the value on dst would differ from the source by one newline.
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"),
                 "--secret-stdin", sid, "--dry-run", input=keyfile.read_bytes() + b"\n")
    assert r.returncode == 0, r.stderr_text
    assert "newline" in r.stderr_text and sid in r.stderr_text
    assert sid not in lab.secret_uuids("dst")  # dry run changed nothing


def test_private_destination_copy_is_unverifiable_and_reset_on_request(clean, name, migcoord):
    lab = clean
    sid = lab.vm(name, on="src")["secret"]
    lab.define_secret("dst", sid, "vtpm", f"{name}-vtpm", b"stale-value-on-destination-xxxxx", private=True)
    base = ("--from", lab.uri("src"), "--to", lab.uri("dst"))

    r = migcoord("secrets", name, *base, "--json")
    assert r.returncode == 0, r.stderr_text
    assert [(p["dest_status"], p["action"]) for p in json.loads(r.stdout_text)] == [("unverifiable", "reuse")]

    # Its value decides success and cannot be read: a decisive unknown, refused before anything changes.
    before = (lab.secret_xml("dst", sid), lab.digest("dst", sid))
    r = migcoord("migrate", name, *base)
    assert r.returncode == 6, r.stderr_text
    err = r.stderr_text.strip().splitlines()[-1]
    assert "UNKNOWN" in err and "SECRET-UNVERIFIABLE" in err and "nothing was changed" in err
    assert "--reset-secret-values" in err and "--accept-unknown" in err
    assert (lab.secret_xml("dst", sid), lab.digest("dst", sid)) == before and lab.where(name) == {"src": "running"}
    assert [e["event"] for e in migcoord.events()][-1:] == ["undecided"]

    r = migcoord("migrate", name, *base, "--reset-secret-values")
    assert r.returncode == 0, r.stderr_text
    assert lab.digest("dst", sid) == lab.digest("src", sid)
    assert "private='yes'" in lab.secret_xml("dst", sid)
    assert "secret-value-reset" in [e["event"] for e in migcoord.events()]
    assert lab.where(name) == {"dst": "running"}


def test_explicit_destination_flags_and_ephemeral_warning(clean, name, migcoord):
    lab = clean
    sid = lab.vm(name, on="src")["secret"]
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"),
                 "--dest-private", "yes", "--dest-ephemeral", "yes")
    assert r.returncode == 0, r.stderr_text
    xml = lab.secret_xml("dst", sid)
    assert "private='yes'" in xml and "ephemeral='yes'" in xml
    assert "ephemeral" in r.stderr_text and "persistent domain" in r.stderr_text


def test_rollback_after_permanent_failure_removes_only_what_the_run_created(clean, name, migcoord):
    lab = clean
    # A LUKS disk on the host's local storage without --copy-storage: libvirt refuses the
    # migration for good (VIR_ERR_MIGRATE_UNSAFE) after our secrets were provisioned. Without SSH the
    # checks cannot tell the disk is local (a decisive unknown): --accept-unknown lets the run go on to it.
    vm = lab.vm(name, on="src", luks_disk="local")
    vtpm, disk = vm["secret"], vm["disk_secret"]
    lab.define_secret("dst", disk, "volume", f"/var/lib/libvirt/images/{name}.luks", lab.stored_value("src", disk))

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--accept-unknown")

    assert r.returncode == 3
    assert "still on" in r.stderr_text and "MIGRATE_UNSAFE" in r.stderr_text
    assert vtpm not in lab.secret_uuids("dst")  # created by this run → undone
    assert disk in lab.secret_uuids("dst")      # was there before → kept
    assert {vtpm, disk} <= lab.secret_uuids("src")  # source never touched
    assert lab.where(name) == {"src": "running"}
    events = [(e["event"], e.get("uuid")) for e in migcoord.events()]
    assert ("secret-undefined", vtpm) in events and ("secret-undefined", disk) not in events
    assert ("migration-attempt", lab.conn("src").lookupByName(name).UUIDString()) in events


def test_secrets_command_table(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src", luks_disk="shared")
    r = migcoord("secrets", name, "--from", lab.uri("src"), "--to", lab.uri("dst"))
    assert r.returncode == 0, r.stderr_text
    lines = r.stdout_text.splitlines()
    assert lines[0].split() == ["UUID", "KIND", "USAGE", "SOURCE", "DESTINATION", "ACTION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[vm["secret"]][1:] == ["vtpm", f"vtpm:{name}-vtpm", "readable", "missing", "provision"]
    assert rows[vm["disk_secret"]][1] == "disk-encryption" and rows[vm["disk_secret"]][-1] == "provision"
    assert lab.secret_uuids("dst") == set()  # read-only


def test_plaintext_remote_transport_is_refused_unless_allowed(clean, name, migcoord):
    """Host names (not literal loopback addresses) over qemu+tcp count as a plaintext network.
    The CLI runs in a mount namespace whose /etc/hosts maps src/dst to the lab's loopback
    addresses, so even the allowed case never leaves this machine."""
    lab = clean
    lab.vm(name, on="src")

    def run(*extra: str):
        return migcoord("migrate", name, "--from", "qemu+tcp://src/system", "--to", "qemu+tcp://dst/system",
                        *extra, names=True, timeout=120)

    r = run()
    assert r.returncode == 1, r.stderr_text
    assert "unencrypted" in r.stderr_text and "--allow-plaintext-secrets" in r.stderr_text
    assert lab.secret_uuids("dst") == set() and lab.where(name) == {"src": "running"}

    r = run("--allow-plaintext-secrets")
    assert r.returncode == 0, r.stderr_text
    assert lab.where(name) == {"dst": "running"}


def test_journal_file_is_owner_only(clean, name, migcoord):
    lab = clean
    lab.vm(name, on="src")
    assert migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst")).returncode == 0
    assert stat.S_IMODE(os.stat(migcoord.journal).st_mode) == 0o600


def test_cleanup_source_secrets_removes_only_unshared_source_copies(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src")
    other = lab.vm(f"{name}-b", on="src")
    # A second source domain that shares the first one's vTPM secret must keep it.
    shared = lab.vm(f"{name}-c", on="src", no_start=True)
    xml = lab.conn("src").lookupByName(f"{name}-c").XMLDesc(0).replace(shared["secret"], other["secret"])
    lab.conn("src").defineXML(xml)
    base = ("--from", lab.uri("src"), "--to", lab.uri("dst"), "--cleanup-source-secrets")

    assert migcoord("migrate", name, *base).returncode == 0
    assert vm["secret"] not in lab.secret_uuids("src")  # opted in, used by no other domain
    assert vm["secret"] in lab.secret_uuids("dst")

    r = migcoord("migrate", f"{name}-b", *base)
    assert r.returncode == 0, r.stderr_text
    assert other["secret"] in lab.secret_uuids("src")  # still used by {name}-c on the source
    assert lab.where(f"{name}-b") == {"dst": "running"}


def test_value_never_appears_in_any_process_argv(clean, name, migcoord, tmp_path):
    """While migcoord provisions and migrates, no process on the machine (migcoord, libvirtd,
    QEMU, swtpm, the key helper) carries the value, raw, hex or base64, in its command line."""
    import base64 as b64
    import time

    lab = clean
    keyfile = tmp_path / "vtpm.key"
    sid = lab.vm(name, on="src", secret="private", keyfile=keyfile)["secret"]
    value = keyfile.read_bytes()
    forms = [value, value.hex().encode(), b64.b64encode(value)]
    proc = migcoord.background("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--secret-command",
                               f"{_helper_script(tmp_path, keyfile)} --uuid {{uuid}}")
    seen = 0
    while proc.poll() is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            seen += 1
            assert not any(form in cmdline for form in forms), f"value in argv of pid {pid}"
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert seen > 100  # we really looked while it ran
    assert lab.digest("dst", sid) == lab.digest("src", sid)


@pytest.mark.parametrize("with_ssh", [True, False], ids=["ssh-logs", "plan-only"])
def test_late_failure_says_why(clean, name, migcoord, with_ssh):
    """A private destination copy with a different value cannot be compared (a decisive unknown, refused
    unless accepted); with --accept-unknown the migration is tried and fails late with libvirt's generic
    "job 'migration out' unexpectedly failed". migcoord names the probable cause and the fix; over SSH it
    also shows the destination's swtpm log lines."""
    lab = clean
    sid = lab.vm(name, on="src")["secret"]
    wrong = b"not-the-right-value-0123456789ab"
    lab.define_secret("dst", sid, "vtpm", f"{name}-vtpm", wrong, private=True)
    ssh = lab.env["ssh"]
    extra = ["--ssh", "--ssh-key", ssh["key"], "--ssh-known-hosts", ssh["known_hosts"]] if with_ssh else []

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), *extra, "--accept-unknown")

    assert r.returncode == 3, r.stderr_text
    lines = r.stderr_text.strip().splitlines()
    last = lines[-1]
    assert "unexpectedly failed" in last or "failed" in last
    assert "probable cause" in last and sid in last and "different value" in last
    assert "--reset-secret-values" in last  # the fix
    evidence = [ln for ln in lines if ln.startswith("migcoord: evidence: ")]
    if with_ssh:
        assert any("swtpm" in ln and "decrypt" in ln.lower() for ln in evidence), lines
    else:
        assert evidence == []
    assert lab.where(name) == {"src": "running"}
    assert lab.stored_value("dst", sid) == wrong  # not ours: left as it was
    assert_no_value(lab.stored_value("src", sid), r.stdout, r.stderr)
    assert_no_value(wrong, r.stdout, r.stderr)
