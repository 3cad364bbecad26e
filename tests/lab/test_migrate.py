"""Walking skeleton on the real lab: secrets provisioned or reused, then a real live migration."""
from __future__ import annotations

import json
import os

from labkit.client import ACCEPT_SHARED_IMAGE, assert_no_value


def test_missing_secret_is_provisioned_and_vm_migrates(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src", secret="readable")
    sid = vm["secret"]
    assert sid not in lab.secret_uuids("dst")

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json")

    assert r.returncode == 0, r.stderr_text
    out = json.loads(r.stdout_text)
    assert out["state"] == "migrated" and out["dest_state"] == "running"
    assert [(s["uuid"], s["action"], s["kind"]) for s in out["secrets"]] == [(sid, "provision", "vtpm")]
    assert lab.where(name) == {"dst": "running"}
    assert lab.tpm_state_present("dst", name)
    # Same UUID, usage and flags on both sides; byte-identical value (compared by digest).
    assert lab.secret_xml("dst", sid) == lab.secret_xml("src", sid)
    assert lab.digest("dst", sid) == lab.digest("src", sid) is not None
    # Never deleted on the source by itself.
    assert sid in lab.secret_uuids("src")
    value = lab.stored_value("src", sid)
    assert_no_value(value, r.stdout, r.stderr, migcoord.journal.read_bytes())
    # the ownership lease's events left out (test_safety.py)
    events = [e["event"] for e in migcoord.events() if not e["event"].startswith("lease-")]
    assert events[:3] == ["migration-start", "secret-defined", "secret-value-set"]
    assert events[-1] == "migration-done"
    assert oct(os.stat(migcoord.journal).st_mode & 0o777) == "0o600"


def test_secret_already_on_destination_is_reused_not_redefined(clean, name, migcoord):
    lab = clean
    vm = lab.vm(name, on="src", secret="readable")
    sid = vm["secret"]
    lab.define_secret("dst", sid, "vtpm", f"{name}-vtpm", lab.stored_value("src", sid))
    before = lab.secret_file("dst", sid).stat()

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"))

    assert r.returncode == 0, r.stderr_text
    assert "reuse [match]" in r.stdout_text
    after = lab.secret_file("dst", sid).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    events = [e["event"] for e in migcoord.events()]
    assert "secret-defined" not in events and "secret-reused" in events
    assert lab.where(name) == {"dst": "running"}


def test_private_secret_without_value_source_is_refused_and_nothing_changes(clean, name, migcoord):
    lab = clean
    sid = lab.vm(name, on="src", secret="private")["secret"]
    dst_secrets = lab.secret_uuids("dst")

    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"))

    assert r.returncode == 1
    err = [line for line in r.stderr_text.splitlines() if not line.startswith("{")]  # not JSON events
    assert len(err) == 1 and sid in err[0] and "private" in err[0] and "--secret-file" in err[0]
    assert lab.secret_uuids("dst") == dst_secrets
    assert lab.where(name) == {"src": "running"}


def test_rerun_after_success_says_already_on_destination(clean, name, migcoord):
    lab = clean
    lab.vm(name, on="src")
    args = ("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"))
    assert migcoord(*args).returncode == 0
    secrets_before = lab.secret_uuids("dst")

    r = migcoord(*args)

    assert r.returncode == 0, r.stderr_text
    assert "already on destination" in r.stdout_text
    assert lab.where(name) == {"dst": "running"} and lab.secret_uuids("dst") == secrets_before


def test_library_call_returns_typed_result(clean, name, tmp_path):
    import coordinator

    lab = clean
    sid = lab.vm(name, on="src")["secret"]
    result = coordinator.migrate(name, lab.uri("src"), lab.uri("dst"), runtime=coordinator.Runtime(lock_dir=tmp_path))
    assert isinstance(result, coordinator.MigrationResult)
    assert result.ok and result.state == "migrated" and result.attempts == 1
    assert [(p.uuid, p.action) for p in result.secrets] == [(sid, coordinator.SecretAction.PROVISION)]
    assert lab.where(name) == {"dst": "running"}


def test_unknown_domain_and_bad_uri_are_usage_errors(clean, migcoord):
    lab = clean
    r = migcoord("migrate", "no-such-vm", "--from", lab.uri("src"), "--to", lab.uri("dst"))
    assert r.returncode == 2 and "no-such-vm" in r.stderr_text and "not found" in r.stderr_text
    r = migcoord("migrate", "x", "--from", "http://example/system", "--to", lab.uri("dst"))
    assert r.returncode == 2 and "not a libvirt QEMU URI" in r.stderr_text
    assert len(r.stderr_text.strip().splitlines()) == 1 and "--to" not in r.stderr_text


def test_tty_gets_a_progress_bar(clean, name, migcoord):
    """On a terminal, stderr shows a progress bar (percent, MiB, rate, ETA), not JSON events."""
    import pty

    lab = clean
    lab.vm(name, on="src", dirty_memory=True)
    leader, follower = pty.openpty()
    proc = migcoord.background("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--bandwidth", "2",
                               "--timeout", "3", *ACCEPT_SHARED_IMAGE, stderr=follower)
    os.close(follower)
    proc.communicate(timeout=120)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    text = out.decode(errors="replace")
    assert "%" in text and "MiB/s" in text and "ETA" in text and "[" in text
    assert '"event"' not in text


def test_ssh_verification_checks_vtpm_state_on_destination(clean, name, migcoord):
    lab = clean
    lab.vm(name, on="src")
    ssh = lab.env["ssh"]
    r = migcoord("migrate", name, "--from", lab.uri("src"), "--to", lab.uri("dst"),
                 "--ssh-key", ssh["key"], "--ssh-known-hosts", ssh["known_hosts"], "--json")
    assert r.returncode == 0, r.stderr_text
    checks = [json.loads(line) for line in r.stderr_text.splitlines() if '"event": "checks"' in line][0]
    # The SSH checks ran (nothing skipped); the one expected warning: the secret at rest in base64.
    assert checks["ok"] and checks["counts"]["skipped"] == 0 and checks["counts"]["error"] == 0
    assert checks["warnings"] == ["SECRET-AT-REST-UNENCRYPTED"]
    assert lab.where(name) == {"dst": "running"} and lab.tpm_state_present("dst", name)
