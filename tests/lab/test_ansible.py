"""The Ansible collection (contrib/ansible, migcoord.libvirt) with a real ansible-playbook on the lab:
the example drain playbook in check mode (changes nothing) and for real (serial: 1), and the
migrate/check modules. ansible-core comes from the test extra (a version for Python 3.11)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.flows.maintenance import read_maintenance
from coordinator.virt.host import Host
from labkit.client import ROOT, assert_no_value

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
COLLECTIONS = ROOT / "contrib" / "ansible"
DRAIN = COLLECTIONS / "ansible_collections" / "migcoord" / "libvirt" / "playbooks" / "drain.yml"
OUT = Path(os.environ.get("MIGCOORD_ANSIBLE_OUTPUT_DIR", "/nonexistent"))

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core not installed (test extra)")


def inventory(lab, tmp_path: Path) -> Path:
    p = tmp_path / "inventory.ini"
    p.write_text(f"""[hypervisors]
hv1 migcoord_uri={lab.uri('src')}
hv2 migcoord_uri={lab.uri('dst')}
hv3 migcoord_uri={lab.uri('dst2')}

[drain]
hv1
hv2

[controller]
localhost ansible_connection=local ansible_python_interpreter={sys.executable}
""")
    return p


def playbook(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_HOME": str(tmp_path / "ah"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0", "LC_ALL": "C.UTF-8",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
           "PYTHONPATH": str(ROOT)}  # the modules import this checkout of the library (local connection)
    return subprocess.run([str(ANSIBLE_PLAYBOOK), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_drain_playbook_check_mode_changes_nothing_then_drains_one_host_at_a_time(clean, name, tmp_path):
    lab = clean
    a = lab.vm(f"{name}-a", on="src", secret="private")  # its value comes only from Ansible (vault) vars
    lab.vm(f"{name}-b", on="dst")
    value = lab.stored_value("src", a["secret"])
    b64 = base64.b64encode(value).decode()
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"migcoord_secret_values": {a["secret"]: b64},
                                 "migcoord_journal": str(tmp_path / "journal.jsonl"),
                                 "migcoord_lock_dir": str(tmp_path / "locks")}))
    extra.chmod(0o600)
    inv = inventory(lab, tmp_path)
    before = lab.snapshot()

    dry = playbook(tmp_path, "-i", str(inv), str(DRAIN), "-e", f"@{extra}", "--check", "-v")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert lab.snapshot() == before and not (tmp_path / "journal.jsonl").exists()  # nothing changed anywhere
    assert f"{name}-a -> {lab.uri('dst2')}" in dry.stdout and f"{name}-b -> {lab.uri('dst2')}" in dry.stdout
    assert dry.stdout.index("hv1") < dry.stdout.index("hv2")  # one host at a time, in order

    real = playbook(tmp_path, "-i", str(inv), str(DRAIN), "-e", f"@{extra}", "-v")
    if OUT.is_dir():  # for a human: the playbook's own output
        (OUT / "drain-check.txt").write_text(dry.stdout)
        (OUT / "drain.txt").write_text(real.stdout)

    assert real.returncode == 0, real.stdout + real.stderr
    assert lab.where(f"{name}-a") == {"dst2": "running"} and lab.where(f"{name}-b") == {"dst2": "running"}
    assert lab.digest("dst2", a["secret"]) == lab.digest("src", a["secret"])
    assert real.stdout.count("moved:") == 2
    assert real.stdout.index("[hv1 -> localhost]") < real.stdout.index("[hv2 -> localhost]")  # serial: 1
    # Each drained host is left marked as draining (the dry run marked nothing: the snapshot above).
    for host in ("src", "dst"):
        with Host.open(lab.uri(host)) as h:
            m = read_maintenance(h)
        assert m is not None and m.reason == "evacuation", host
    with Host.open(lab.uri("dst2")) as h:
        assert read_maintenance(h) is None
    for out in (dry, real):
        assert_no_value(value, out.stdout.encode(), out.stderr.encode())
        assert b64 not in out.stdout + out.stderr


def test_migrate_and_check_modules(clean, name, tmp_path):
    lab = clean
    lab.vm(name, on="src")
    book = tmp_path / "one.yml"
    mv = (f'{{domain: "{name}", src: "{{{{ src }}}}", dst: "{{{{ dst }}}}", lock_dir: "{{{{ lockdir }}}}", '
          f'journal: "{tmp_path}/j.jsonl"}}')
    book.write_text(f"""
- hosts: localhost
  gather_facts: false
  vars: {{src: "{lab.uri('src')}", dst: "{lab.uri('dst')}", lockdir: "{tmp_path}/locks"}}
  tasks:
    - migcoord.libvirt.check: {{domains: ["{name}"], src: "{{{{ src }}}}", dst: "{{{{ dst }}}}"}}
      register: chk
    - migcoord.libvirt.migrate: {mv}
      check_mode: true
      register: dry
    - migcoord.libvirt.migrate: {mv}
      register: moved
    - migcoord.libvirt.migrate: {mv}
      register: again
    - migcoord.libvirt.check: {{domains: ["nope-{name}"], src: "{{{{ src }}}}", dst: "{{{{ dst }}}}"}}
      register: bad
      ignore_errors: true
    - ansible.builtin.assert:
        that:
          - chk.report.ok and not chk.changed
          - dry.changed and dry.result.state == "dry-run"
          - moved.changed and moved.result.state == "migrated"
          - not again.changed and again.result.state == "already-on-destination"
          - bad.failed and bad.exit_code == 2
""")
    inv = inventory(lab, tmp_path)
    r = playbook(tmp_path, "-i", str(inv), str(book))
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.where(name) == {"dst": "running"}
