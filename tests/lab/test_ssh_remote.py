"""SSH for real: coordinator/ssh/runner.py and checks/ssh.py against each lab host's own sshd.

Failing cases are produced on the destination host itself, inside its mount namespace only
(nsenter into dst's libvirtd namespace; every change is undone in a finally): swtpm hidden,
swtpm downgraded, a tiny filesystem under the TPM state directory.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from checks.context import build_context
from checks.registry import REGISTRY, Registry, run_checks
from coordinator.core.errors import BadInput, HostUnreachable
from coordinator.steps.parameters import MigrateOptions
from coordinator.ssh.runner import SshConfig, SshRunner, runner_for
from coordinator.core.secret_rules import SecretPolicy



SSH_IDS = ("SWTPM-MISSING", "SWTPM-CAPABILITIES", "SWTPM-VERSION-OLDER", "TPM-STATE-SPACE",
           "SECRET-AT-REST-UNENCRYPTED")


@pytest.fixture(scope="module")
def ssh_checks():
    """checks.ssh, whose checks the checks package registers."""
    import checks.ssh as mod
    from checks.registry import REGISTRY
    assert set(SSH_IDS) <= set(REGISTRY.checks)
    return mod


@pytest.fixture(scope="module")
def cfg(lab) -> SshConfig:
    s = lab.env["ssh"]
    return SshConfig(user=s["user"], port=s["port"], key_file=Path(s["key"]), known_hosts=Path(s["known_hosts"]),
                     connect_timeout=5, command_timeout=20)


@pytest.fixture
def dst(lab, cfg):
    with SshRunner(lab.env["hosts"]["dst"]["addr"], cfg) as r:
        yield r


def _digest(p: Path) -> tuple[str, float]:
    return hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime


# ------------------------------------------------------------------ the runner

def test_command_runs_on_that_host(lab, cfg, dst):
    assert dst.run("hostname").stdout.strip() == "dst"
    with SshRunner(lab.env["hosts"]["src"]["addr"], cfg) as src:
        assert src.run("hostname").stdout.strip() == "src"


def test_arguments_stay_arguments_remotely(dst, lab):
    victim = "/etc/libvirt/migcoord-quoting-victim"
    assert dst.run("touch {}", victim).ok
    try:
        r = dst.run("printf '%s|' {} {}", f"; rm -f {victim}", "$(hostname)")
        assert r.ok and r.stdout == f"; rm -f {victim}|$(hostname)|"
        assert dst.run("test -f {}", victim).ok  # the ; rm never ran
    finally:
        dst.run("rm -f {}", victim)


def test_exit_status_and_stderr(dst):
    r = dst.run("echo out; echo err >&2; exit 7")
    assert (r.exit_status, r.stdout, r.stderr, r.ok) == (7, "out\n", "err\n", False)


def test_one_connection_is_reused(dst):
    assert dst._client is None  # lazy
    dst.run("true")
    client, transport = dst._client, dst._client.get_transport()
    dst.run("true")
    assert dst._client is client and dst._client.get_transport() is transport and transport.is_active()
    # the server's view: both commands come from the same client TCP port, i.e. one connection
    a, b = (dst.run("echo ${{SSH_CLIENT% *}}").stdout for _ in range(2))
    assert a == b and a.split()[1] == str(transport.sock.getsockname()[1])


def test_concurrent_commands_share_the_connection(dst):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: dst.run("echo {}", str(i)).stdout, range(8)))
    assert outs == [f"{i}\n" for i in range(8)]


def test_reconnects_after_close(dst):
    dst.run("true")
    dst.close()
    assert dst._client is None
    assert dst.run("hostname").stdout.strip() == "dst"


def test_command_timeout_is_bounded(dst):
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable, match="timed out after 1s"):
        dst.run("sleep 10", timeout=1)
    assert time.monotonic() - t0 < 3
    assert dst.run("true").ok  # the connection survives a timed-out command


def test_unknown_host_key_refused_never_added(lab, cfg, tmp_path):
    kh = tmp_path / "known_hosts"
    lines = Path(cfg.known_hosts).read_text().splitlines()
    kh.write_text("\n".join(ln for ln in lines if ",dst " not in ln) + "\n")
    before = _digest(kh)
    addr = lab.env["hosts"]["dst"]["addr"]
    runner = SshRunner(addr, SshConfig(key_file=cfg.key_file, known_hosts=kh, connect_timeout=5))
    with pytest.raises(BadInput) as e:
        runner.run("hostname")
    msg = str(e.value)
    assert f"{addr} port 22 is not in {kh}" in msg and "SHA256:" in msg
    assert f"ssh-keyscan -p 22 {addr} >> {kh}" in (e.value.hint or "")
    assert "\n" not in e.value.message
    assert _digest(kh) == before  # nothing was added
    with pytest.raises(BadInput):
        runner.run("hostname")  # and still refused the second time
    assert _digest(kh) == before


def test_changed_host_key_refused(lab, cfg, tmp_path):
    kh = tmp_path / "known_hosts"
    lines = Path(cfg.known_hosts).read_text().splitlines()
    src_key = next(ln for ln in lines if ",src " in ln).split(None, 1)[1]
    kh.write_text("\n".join(ln if ",dst " not in ln else f"{ln.split()[0]} {src_key}" for ln in lines) + "\n")
    before = _digest(kh)
    runner = SshRunner(lab.env["hosts"]["dst"]["addr"], SshConfig(key_file=cfg.key_file, known_hosts=kh))
    with pytest.raises(BadInput, match="does not match"):
        runner.run("hostname")
    assert _digest(kh) == before


def test_unreachable_ssh_host_fails_within_the_connect_timeout(cfg):
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable, match="127.0.0.98"):
        SshRunner("127.0.0.98", cfg).run("hostname")
    assert time.monotonic() - t0 < cfg.connect_timeout + 1


def test_silent_host_times_out(cfg):
    """A host that accepts TCP but never speaks SSH: bounded by connect_timeout (banner timeout)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.97", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        c = SshConfig(key_file=cfg.key_file, known_hosts=cfg.known_hosts, port=port, connect_timeout=1.5)
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable):
            SshRunner("127.0.0.97", c).run("true")
        assert time.monotonic() - t0 < 4


def test_loose_key_file_refused(lab, cfg, tmp_path):
    key = tmp_path / "id"
    shutil.copy(cfg.key_file, key)
    key.chmod(0o644)
    with pytest.raises(BadInput, match="loose permissions 0644"):
        SshRunner(lab.env["hosts"]["dst"]["addr"], SshConfig(key_file=key, known_hosts=cfg.known_hosts))


def test_runner_for_lab_uris(lab, cfg):
    r = runner_for(lab.uri("dst"), cfg)
    with r:
        assert r.run("hostname").stdout.strip() == "dst"
    r = runner_for(lab.env["hosts"]["src"]["ssh_uri"], cfg)
    with r:
        assert r.run("hostname").stdout.strip() == "src"
    assert runner_for(lab.uri("dst"), None) is None


# ------------------------------------------------------------------ the checks, for real

@contextmanager
def in_dst_namespace(lab, *steps: tuple[list[str], list[str]]):
    """Run (do, undo) command pairs inside dst's mount namespace only; undo what was done, always."""
    # -r: the daemon's root too (a host on another release runs chrooted into its root; on this machine's own
    # release that is / and changes nothing)
    ns = ["nsenter", "-t", str(lab.env["hosts"]["dst"]["pid"]), "-m", "-r"]
    done: list[list[str]] = []
    try:
        for do, undo in steps:
            subprocess.run(ns + do, check=True, capture_output=True)
            done.append(undo)
        yield
    finally:
        for undo in reversed(done):
            subprocess.run(ns + undo, check=True, capture_output=True)


@pytest.fixture
def checkctx(clean, cfg, name, ssh_checks):
    """A real CheckContext for a real vTPM domain on src, with SSH runners for both hosts."""
    made = []

    def make(secret_policy: SecretPolicy | None = None):
        if not made:
            clean.vm(name, on="src", secret="readable", no_start=True)
        ctx = build_context(clean.uri("src"), clean.uri("dst"), [name],
                            MigrateOptions(secret_policy=secret_policy or SecretPolicy(), ssh=cfg))
        made.append(ctx)
        return ctx
    yield make
    for ctx in made:
        ctx.close()


def ssh_report(ctx):  # needs the ssh_checks fixture
    reg = Registry({cid: REGISTRY.checks[cid] for cid in SSH_IDS})
    return run_checks(ctx, registry=reg)


def statuses(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report.findings:
        out.setdefault(f.check_id, set()).add(f.status)
    return out


def test_checks_pass_on_the_lab(checkctx):
    ctx = checkctx(SecretPolicy(dest_ephemeral=True))
    report = ssh_report(ctx)
    assert statuses(report) == {cid: {"pass"} for cid in SSH_IDS}, report.as_dict()
    assert all(f.transport == "ssh" for f in report.findings)
    msgs = {f.check_id: f.message for f in report.findings}
    assert "swtpm 0." in msgs["SWTPM-CAPABILITIES"] and "tpm-2.0, cmdarg-pwd-fd" in msgs["SWTPM-CAPABILITIES"]
    assert "MiB free" in msgs["TPM-STATE-SPACE"]
    assert report.ok


def test_swtpm_hidden_on_dst(lab, checkctx):
    ctx = checkctx(SecretPolicy(dest_ephemeral=True))
    with in_dst_namespace(lab, (["mount", "--bind", "/dev/null", "/usr/bin/swtpm"], ["umount", "/usr/bin/swtpm"])):
        report = ssh_report(ctx)
    missing = report.by_id("SWTPM-MISSING")
    assert [(f.status, f.message) for f in missing if f.status == "fail"] == \
        [("fail", f"swtpm not found on {lab.env['hosts']['dst']['addr']}")]
    assert {f.status for f in missing if "swtpm_setup" in f.message} == {"pass"}
    caps = report.by_id("SWTPM-CAPABILITIES")
    assert [f.status for f in caps] == ["fail"] and "cannot report its capabilities" in caps[0].message
    older = {f.message.split()[0]: f.status for f in report.by_id("SWTPM-VERSION-OLDER")}
    assert older == {"swtpm": "skipped", "libtpms": "pass"}
    assert {"SWTPM-MISSING", "SWTPM-CAPABILITIES"} == {f.check_id for f in report.blocking}
    # undone, and only dst ever saw it
    assert ssh_report(ctx).ok
    assert os.access("/usr/bin/swtpm", os.X_OK)


def test_swtpm_older_on_dst(lab, checkctx, name):
    ctx = checkctx(SecretPolicy(dest_ephemeral=True))
    # in the lab directory: a host in another release's root sees it at the same path (tmp_path it does not)
    fake = lab.dir / f"fake-swtpm-{name}"
    fake.write_text("#!/bin/sh\necho 'TPM emulator version 0.6.3, Copyright (c) 2014-2021 IBM Corp.'\n")
    fake.chmod(0o755)
    try:
        with in_dst_namespace(lab, (["mount", "--bind", str(fake), "/usr/bin/swtpm"], ["umount", "/usr/bin/swtpm"])):
            report = ssh_report(ctx)
    finally:
        fake.unlink()
    bad = [f for f in report.by_id("SWTPM-VERSION-OLDER") if f.status == "fail"]
    assert len(bad) == 1 and bad[0].message.startswith("swtpm 0.6.3 on ") and "is older than 0.7" in bad[0].message


def test_tpm_state_space_low_on_dst(lab, checkctx):
    ctx = checkctx(SecretPolicy(dest_ephemeral=True))
    state = lab.dir / "hosts.d/dst/var/lib/libvirt/swtpm"
    created = not state.exists()
    state.mkdir(parents=True, exist_ok=True)
    try:
        tiny = ["mount", "-t", "tmpfs", "-o", "size=1m", "migcoord-tiny", "/var/lib/libvirt/swtpm"]
        with in_dst_namespace(lab, (tiny, ["umount", "/var/lib/libvirt/swtpm"])):
            report = ssh_report(ctx)
    finally:
        if created:
            state.rmdir()
    f, = report.by_id("TPM-STATE-SPACE")
    assert f.status == "fail" and "migcoord-tiny" in f.message and "need ≥ 10 MiB" in f.message
    assert f.blocking


def test_secret_at_rest_warning(clean, checkctx, name):
    ctx = checkctx()  # mirror the source: the lab's vTPM secret is persistent
    (f,) = ssh_report(ctx).by_id("SECRET-AT-REST-UNENCRYPTED")
    assert f.status == "fail" and f.severity == "warning" and not f.blocking
    dst_libvirt = clean.env["hosts"]["dst"]["versions"]["libvirt"]
    assert "would be stored as plain base64 under /etc/libvirt/secrets" in f.message
    assert f"libvirt {dst_libvirt} < 12.1.0" in f.message or f"libvirt {dst_libvirt} without an encryption key" \
        in f.message
    # the same secret already on dst, persistent: seen on disk there over SSH
    sid = f.message.split()[1]
    clean.define_secret("dst", sid, "vtpm", f"{name}-vtpm", os.urandom(32))
    ctx2 = checkctx()
    (f2,) = ssh_report(ctx2).by_id("SECRET-AT-REST-UNENCRYPTED")
    assert f2.status == "fail" and f"is stored as plain base64 in /etc/libvirt/secrets/{sid}.base64" in f2.message


def test_checks_skip_without_ssh(checkctx):
    ctx = checkctx()
    ctx.runner = lambda role: None
    report = ssh_report(ctx)
    assert {f.status for f in report.findings} == {"skipped"}
    assert {f.message for f in report.findings} == {"SSH not configured"}
