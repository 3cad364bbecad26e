"""Secret value hygiene (issue #21, "Low to medium"): a value or a helper's token is never copied,
logged or left behind.

- ``--secret-command`` tokens: the Ansible option is ``no_log`` (module output and the "Invoked with"
  log line), ``config show`` names the program only.
- Ansible ``secret_values`` are held like every other value: no core dump while held, decoded into
  a wipeable buffer, wiped at the end of the run, no immutable copy kept.
- After a run, no copy of a 600-byte value is anywhere in the process's memory: a real code path
  (keyring → ``SecretProvisioner`` → ``virt.host.Host``) runs in a subprocess that then scans its
  own ``/proc/self/mem``. libvirt itself is the one thing faked: ``Host`` wraps a connection object
  that behaves like libvirt-python's (``virSecret.value()`` returns a new ``bytes``, ``setValue``
  takes one), and the fake daemon's own storage is wiped before the scan (it is another process
  in real life). Copies made inside libvirt's C library are not seen here.
- A signal during ``--secret-command`` kills the helper's process group and wipes what it printed.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib" / "ansible"
A = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
TOKEN = "tok-4f1d9c-SECRET-TOKEN"

# The value: 600 recognisable bytes, built in place in a bytearray (no other copy is ever made of
# it by the harness). Shared by the test and the subprocess.
NEEDLE = textwrap.dedent("""
    def needle(seed, n=600):
        b = bytearray(n)
        x = seed
        for i in range(n):
            x = (x * 1103515245 + 12345) & 0x7fffffff
            b[i] = (x >> 16) & 0xff
        return b
""")

# Scans this process's readable memory for pieces of the value; the needle's own buffer and the
# scan buffer are the only places allowed to hold it. Pieces of 64 bytes that straddle 64-byte
# boundaries: a copy whose first bytes malloc overwrote is still found, a SHA-256 block is not.
SCAN = NEEDLE + textwrap.dedent("""
    import ctypes, os

    def addr(b):
        return ctypes.addressof((ctypes.c_char * len(b)).from_buffer(b))

    def scan(value):
        chunk = 1 << 20
        buf = bytearray(chunk)
        mine = [(addr(value), len(value)), (addr(buf), len(buf))]
        mv = memoryview(value)
        pieces = [mv[o:o + 64] for o in (16, 100, 300, 480, 536)]
        hits = []
        fd = os.open("/proc/self/mem", os.O_RDONLY)
        regions = []
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if parts[1][0] == "r" and not (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]",
                                                                                 "[vvar_vclock]")):
                    regions.append((lo, hi, parts[5] if len(parts) > 5 else ""))
        bv = memoryview(buf)
        for lo, hi, name in regions:
            at = lo
            while at < hi:
                want = min(chunk, hi - at)
                try:
                    got = os.preadv(fd, [bv[:want]], at)
                except OSError:
                    break
                if got <= 0:
                    break
                for p in pieces:
                    i = buf.find(p, 0, got)
                    while i != -1:
                        where = at + i
                        if not any(s <= where < s + n for s, n in mine):
                            hits.append((hex(where), name))
                        i = buf.find(p, i + 1, got)
                if at + got >= hi:
                    break
                at += got - 64 if got > 64 else got
        os.close(fd)
        return sorted(set(hits))
""")

RUN = SCAN + textwrap.dedent("""
    import gc, hashlib, json, sys
    import libvirt
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, args["contrib"])
    from coordinator.core.model import SecretKind, SecretRef
    from coordinator.steps.keys import KeyRing, ValueSource
    from coordinator.steps.provision import SecretProvisioner
    from coordinator.virt.host import Host

    A = args["uuid"]
    value = needle(args["seed"])
    want = hashlib.sha256(value).hexdigest()

    class NoSecret(libvirt.libvirtError):
        def __init__(self):
            Exception.__init__(self, "no secret")
        def get_error_code(self):
            return libvirt.VIR_ERR_NO_SECRET
        def get_error_message(self):
            return "no secret"

    class Daemon:  # libvirtd's side: another process in real life, so wiped before the scan
        def __init__(self):
            self.xml, self.values = {}, {}

    class Secret:
        def __init__(self, d, uuid):
            self.d, self.uuid = d, uuid
        def XMLDesc(self, flags):
            return self.d.xml[self.uuid]
        def value(self, flags):  # like libvirt-python: a new bytes object each call
            if self.uuid not in self.d.values:
                raise NoSecret()
            return bytes(self.d.values[self.uuid])
        def setValue(self, v, flags):
            assert type(v) is bytes
            self.d.values[self.uuid] = bytearray(v)
        def undefine(self):
            self.d.xml.pop(self.uuid)

    class Conn:
        def __init__(self, d):
            self.d = d
        def secretLookupByUUIDString(self, uuid):
            if uuid not in self.d.xml:
                raise NoSecret()
            return Secret(self.d, uuid)
        def secretDefineXML(self, xml, flags):
            import xml.etree.ElementTree as ET
            self.d.xml[ET.fromstring(xml).findtext("uuid")] = xml
        def listAllSecrets(self, flags):
            return []

    def secret_xml(private):
        return (f"<secret ephemeral='no' private='{'yes' if private else 'no'}'><uuid>{A}</uuid>"
                f"<usage type='vtpm'><name>vm</name></usage></secret>")

    src_d, dst_d = Daemon(), Daemon()
    private = mode != "source-api"
    src_d.xml[A] = secret_xml(private)
    if not private:
        src_d.values[A] = bytearray(value)
    if args.get("dst_has_it"):
        dst_d.xml[A] = secret_xml(False)
        dst_d.values[A] = bytearray(value)
    src = Host("qemu+tls://src.example/system", Conn(src_d))
    dst = Host("qemu+tls://dst.example/system", Conn(dst_d))
    if mode == "ansible":
        from ansible_collections.migcoord.libvirt.plugins.module_utils.migcoord_common import InlineKeyRing
        ring = InlineKeyRing({A: args["b64"]}, [])
    elif mode in ("file", "dir", "command", "stdin"):
        ring = KeyRing([ValueSource(mode, args["arg"], A if mode in ("file", "stdin") else None)])
    else:
        ring = KeyRing()
    prov = SecretProvisioner(src, dst, ring)
    with ring.held():
        plans = prov.plan([SecretRef(A, "vtpm", SecretKind.VTPM, "/domain/devices/tpm")])
        prov.apply(plans)
    verdict = plans[0].verdict.name.lower()
    got = hashlib.sha256(dst_d.values[A]).hexdigest() == want
    for d in (src_d, dst_d):
        for v in d.values.values():
            v[:] = bytes(len(v))
    del src, dst, prov, ring, plans, src_d, dst_d, d
    gc.collect()
    print(json.dumps({"verdict": verdict, "provisioned": got, "hits": scan(value)}))
""")


def value_bytes(seed: int) -> bytes:
    ns: dict = {}
    exec(NEEDLE, ns)
    return bytes(ns["needle"](seed))


def run_and_scan(mode: str, tmp_path: Path, seed: int = 20240521, stdin: bytes | None = None, **args) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", RUN, mode,
                        json.dumps({"uuid": A, "seed": seed, "contrib": str(CONTRIB), **args})],
                       input=stdin if stdin is not None else b"", capture_output=True, env=env, cwd=tmp_path,
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return json.loads(p.stdout.decode().splitlines()[-1])


def key(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# -- item 3: no copy of a value in memory after a run -------------------------------------------------

def test_no_copy_of_a_key_file_value_in_memory_after_the_run(tmp_path):
    r = run_and_scan("file", tmp_path, arg=str(key(tmp_path / "k", value_bytes(20240521))))
    assert r["verdict"] == "provision" and r["provisioned"]
    assert r["hits"] == []


def test_no_copy_of_a_secret_dir_value_in_memory_after_the_run(tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    key(d / A, value_bytes(20240521))
    r = run_and_scan("dir", tmp_path, arg=str(d))
    assert r["verdict"] == "provision" and r["provisioned"]
    assert r["hits"] == []


def test_no_copy_of_a_stdin_value_in_memory_after_the_run(tmp_path):
    r = run_and_scan("stdin", tmp_path, stdin=value_bytes(20240521), arg="-")
    assert r["verdict"] == "provision" and r["provisioned"]
    assert r["hits"] == []


def test_no_copy_of_a_secret_command_value_in_memory_after_the_run(tmp_path):
    k = key(tmp_path / "k", value_bytes(20240521))
    r = run_and_scan("command", tmp_path, arg=f"cat {k}")
    assert r["verdict"] == "provision" and r["provisioned"]
    assert r["hits"] == []


def test_no_copy_of_a_source_api_value_in_memory_after_the_run(tmp_path):
    """virSecretGetValue's bytes (libvirt-python) and virSecretSetValue's argument are wiped."""
    r = run_and_scan("source-api", tmp_path)
    assert r["verdict"] == "provision" and r["provisioned"]
    assert r["hits"] == []


@pytest.mark.parametrize("mode", ["source-api", "file"])
def test_no_copy_of_a_value_compared_with_the_destination_copy_in_memory_after_the_run(tmp_path, mode):
    """The destination's value, read to compare (virSecretGetValue there), is wiped too."""
    extra = {"arg": str(key(tmp_path / "k", value_bytes(20240521)))} if mode == "file" else {}
    r = run_and_scan(mode, tmp_path, dst_has_it=True, **extra)
    assert r["verdict"] == "match" and r["provisioned"]
    assert r["hits"] == []


# -- item 2: Ansible secret_values held like every other value ---------------------------------------

def test_no_copy_of_an_ansible_secret_values_value_in_memory_after_the_run(tmp_path):
    r = run_and_scan("ansible", tmp_path, b64=base64.b64encode(value_bytes(20240521)).decode())
    assert r["verdict"] == "provision" and r["provisioned"]
    assert r["hits"] == []


@pytest.fixture
def common():
    sys.path.insert(0, str(CONTRIB))
    try:
        from ansible_collections.migcoord.libvirt.plugins.module_utils import migcoord_common
        yield migcoord_common
    finally:
        sys.path.remove(str(CONTRIB))


def test_ansible_secret_values_are_held_without_core_dumps_and_wiped_at_the_end(common):
    import resource

    from coordinator.steps import nodump
    before = (resource.getrlimit(resource.RLIMIT_CORE), nodump.dumpable())
    ring = common.InlineKeyRing({A.upper(): base64.b64encode(b"TOPSECRET-VALUE").decode()}, [])
    with ring.held():
        v = ring.value_for(A)
        assert bytes(v.data) == b"TOPSECRET-VALUE" and v.source == "ansible:secret_values"
        assert nodump.dumpable() in (0, None) and resource.getrlimit(resource.RLIMIT_CORE)[0] == 0
        # no immutable copy of the decoded value anywhere in the keyring
        assert not [x for x in vars(ring).values() if isinstance(x, dict) and
                    any(isinstance(y, (bytes, bytearray)) for y in x.values())]
    assert bytes(v.data) == bytes(len(b"TOPSECRET-VALUE"))  # wiped in place
    assert (resource.getrlimit(resource.RLIMIT_CORE), nodump.dumpable()) == before


@pytest.mark.parametrize("text", ["not base64!", "QUJD\n", "QUJ", "QU=D", "QUJDRA===", "====", "QUJDR?=="])
def test_ansible_secret_values_not_base64_are_refused_naming_the_uuid_only(common, text):
    with pytest.raises(ValueError) as ei:
        common.InlineKeyRing({A: text}, [])
    assert str(ei.value) == f"secret_values[{A}] is not base64"
    assert ei.value.__context__ is None or text not in str(ei.value.__context__)


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), b"\xff" * 31])
def test_base64_decoded_into_a_bytearray_as_b64decode_would(data):
    from coordinator.steps.keys import decode_base64
    text = base64.b64encode(data).decode()
    got = decode_base64(text)
    assert type(got) is bytearray and got == data


# -- item 1: --secret-command tokens ------------------------------------------------------------------

# The module runs as Ansible runs it (its arguments in a file named by argv[1]); AnsibleModule.log,
# which writes the "Invoked with" line to syslog/journald, writes to stderr instead.
MODULE = textwrap.dedent("""
    import runpy, sys
    from ansible.module_utils import basic
    basic.AnsibleModule.log = lambda self, msg, log_args=None: print("LOG:", msg, file=sys.stderr)
    basic.HAS_SYSLOG = True
    runpy.run_module(sys.argv.pop(1), run_name="__main__")
""")


@pytest.mark.parametrize("module, extra", [
    ("migrate", {"domain": "vm1", "src": "bogus://a", "dst": "bogus://b"}),
    ("check", {"domains": ["vm1"], "src": "bogus://a", "dst": "bogus://b"}),
    ("evacuate", {"src": "bogus://a", "dsts": ["bogus://b"]}),
])
def test_ansible_secret_command_token_is_never_in_module_output_or_the_invocation_log(tmp_path, module, extra):
    pytest.importorskip("ansible")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        **extra, "secret_command": f"/usr/local/bin/vault-helper --token={TOKEN} {{uuid}}",
        "_ansible_no_log": False, "_ansible_check_mode": True}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CONTRIB), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", MODULE, f"ansible_collections.migcoord.libvirt.plugins.modules.{module}",
                        str(args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "invocation" in out and "LOG: Invoked with" in p.stderr  # both were written
    assert TOKEN not in p.stdout and TOKEN not in p.stderr


def config_with_command(tmp_path: Path) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(f'[[sources]]\ncommand = "/usr/local/bin/vault-helper --token={TOKEN} {{uuid}}"\n'
                 f'usage = "vm-*"\n')
    p.chmod(0o600)
    return p


@pytest.mark.parametrize("json_", [True, False], ids=["json", "text"])
def test_config_show_names_the_secret_command_program_only(tmp_path, capsys, json_):
    from coordinator.cli.main import main
    rc = main(["--config", str(config_with_command(tmp_path)), "config", "show", *(["--json"] if json_ else [])])
    out, err = capsys.readouterr()
    assert rc == 0
    assert TOKEN not in out and TOKEN not in err
    assert "/usr/local/bin/vault-helper" in out
    if json_:
        (src,) = json.loads(out)["sources"]
        assert src == {"kind": "command", "program": "/usr/local/bin/vault-helper", "arguments_hidden": 2,
                       "usage": "vm-*"}


# -- item 4: a signal during --secret-command ---------------------------------------------------------

SIGNALLED = SCAN + textwrap.dedent("""
    import json, os, signal, sys, threading, time
    from coordinator.steps.keys import KeyRing, ValueSource
    args = json.loads(sys.argv[1])
    value = needle(args["seed"])
    sig = getattr(signal, args["signal"])
    def on_term(signum, frame):  # as cli.main does: SIGTERM becomes a KeyboardInterrupt
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    def send():
        while not os.path.exists(args["pidfile"]):
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), sig)
    threading.Thread(target=send, daemon=True).start()
    ring = KeyRing([ValueSource("command", args["cmd"])])
    try:
        ring.value_for(args["uuid"])
        outcome = "returned"
    except KeyboardInterrupt:
        outcome = "interrupted"
    print(json.dumps({"outcome": outcome, "hits": scan(value)}))
""")


def gone(pid: int) -> bool:
    for _ in range(100):  # SIGKILL is delivered asynchronously; the reaper is init
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_during_secret_command_kills_its_process_group_and_wipes_the_partial_value(tmp_path, sig):
    part = key(tmp_path / "part", value_bytes(777))
    pidfile = tmp_path / "grandchild.pid"
    helper = tmp_path / "helper"
    helper.write_text(f"#!/bin/sh\ncat {part}\n"
                      f"(sleep 300 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait) &\nsleep 300\n")
    helper.chmod(0o700)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", SIGNALLED, json.dumps({
            "uuid": A, "seed": 777, "signal": sig, "pidfile": str(pidfile), "cmd": str(helper)})],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert p.returncode == 0, p.stderr[-3000:]
        r = json.loads(p.stdout.splitlines()[-1])
        assert time.monotonic() - t0 < 20
        assert r["outcome"] == "interrupted"
        assert gone(int(pidfile.read_text())), "the helper's process group survived the signal"
        assert r["hits"] == []
    finally:  # on failure: end the group this test started (by its id), not leave it for 300 s
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(int(pidfile.read_text())), signal.SIGKILL)


@pytest.mark.parametrize("command", [f'["/usr/local/bin/vault-helper", "--token={TOKEN}"]',
                                     f'{{ program = "helper", token = "{TOKEN}" }}'], ids=["array", "table"])
def test_settings_file_command_that_is_not_a_string_is_refused_without_echoing_it(tmp_path, capsys, command):
    from coordinator.cli.main import main
    p = tmp_path / "config.toml"
    p.write_text(f"[[sources]]\ncommand = {command}\n")
    p.chmod(0o600)
    rc = main(["--config", str(p), "config", "show"])
    out, err = capsys.readouterr()
    assert rc == 2 and f"{p}:sources[0].command" in err
    assert TOKEN not in out and TOKEN not in err
