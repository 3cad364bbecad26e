"""The lab as tests see it: URIs, connections and independent witnesses (scripts/lab).

Each test gets uniquely named VMs; after each test every domain and secret on every lab
host is removed, so tests cannot leak into each other. The libvirt Python binding and
the hosts' on-disk secret store are used as independent witnesses of what migcoord did.
"""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "scripts" / "lab"
HOSTS = "src,dst,dst2"

libvirt.registerErrorHandler(lambda _c, _e: None, None)


def run_lab(*args: str) -> str:
    r = subprocess.run([sys.executable, str(LAB), *args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"scripts/lab {' '.join(args)} failed: {r.stderr}")
    return r.stdout


@dataclass
class Lab:
    env: dict
    conns: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return Path(self.env["lab_dir"])

    def uri(self, host: str) -> str:
        return self.env["hosts"][host]["uri"]

    def conn(self, host: str) -> libvirt.virConnect:
        c = self.conns.get(host)
        if c is None or not c.isAlive():
            c = self.conns[host] = libvirt.open(self.uri(host))
        return c

    def restart_down_hosts(self) -> None:
        """scripts/lab up: restarts any host whose daemon died (fault tests), then refreshes
        what the tests know about the hosts (PIDs change) and drops stale connections."""
        run_lab("up", "--hosts", HOSTS)
        self.env = json.loads(run_lab("env", "--json"))
        for h in list(self.conns):
            try:
                alive = self.conns[h].isAlive()
            except libvirt.libvirtError:
                alive = False
            if not alive:
                self.conns.pop(h)

    def vm(self, name: str, on: str = "src", **opts: object) -> dict:
        """scripts/lab vm NAME --on HOST [--secret ...] [--luks-disk ...] ... → {name, secret, ...}."""
        args = ["vm", name, "--on", on]
        for k, v in opts.items():
            if v is True:
                args.append(f"--{k.replace('_', '-')}")
            elif v not in (None, False):
                args += [f"--{k.replace('_', '-')}", str(v)]
        return json.loads(run_lab(*args))

    # -- witnesses ---------------------------------------------------------
    def stored_value(self, host: str, uuid: str) -> bytes | None:
        """The value libvirt 9.0 keeps on disk (plain base64), readable even for private secrets."""
        p = self.dir / "hosts.d" / host / "etc/libvirt/secrets" / f"{uuid}.base64"
        return base64.b64decode(p.read_bytes()) if p.exists() else None

    def digest(self, host: str, uuid: str) -> str | None:
        v = self.stored_value(host, uuid)
        return hashlib.sha256(v).hexdigest() if v is not None else None

    def secret_file(self, host: str, uuid: str) -> Path:
        return self.dir / "hosts.d" / host / "etc/libvirt/secrets" / f"{uuid}.xml"

    def secret_uuids(self, host: str) -> set[str]:
        return {s.lower() for s in self.conn(host).listSecrets()}

    def secret_xml(self, host: str, uuid: str) -> str:
        return self.conn(host).secretLookupByUUIDString(uuid).XMLDesc(0)

    def domain_state(self, host: str, name: str) -> str | None:
        """'running', 'shutoff', ... or None when the host has no such domain."""
        try:
            state = self.conn(host).lookupByName(name).state()[0]
        except libvirt.libvirtError:  # absent, or gone between lookup and state (mid-migration)
            return None
        return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
                libvirt.VIR_DOMAIN_SHUTOFF: "shutoff"}.get(state, "other")

    def where(self, name: str) -> dict[str, str]:
        return {h: s for h in self.env["hosts"] if (s := self.domain_state(h, name))}

    def tpm_state_present(self, host: str, name: str) -> bool:
        dom = self.conn(host).lookupByName(name)
        return (self.dir / "hosts.d" / host / "var/lib/libvirt/swtpm" / dom.UUIDString() / "tpm2").is_dir()

    def define_secret(self, host: str, uuid: str, usage_type: str, usage_id: str, value: bytes,
                      private: bool = False) -> None:
        usage_el = {"vtpm": "name", "volume": "volume", "ceph": "name", "iscsi": "target"}[usage_type]
        xml = (f"<secret ephemeral='no' private='{'yes' if private else 'no'}'><uuid>{uuid}</uuid>"
               f"<usage type='{usage_type}'><{usage_el}>{usage_id}</{usage_el}></usage></secret>")
        self.conn(host).secretDefineXML(xml, 0).setValue(value, 0)

    def wipe(self) -> None:
        """Remove every domain and secret on every lab host."""
        for h in self.env["hosts"]:
            c = self.conn(h)
            for d in c.listAllDomains(0):
                try:
                    if d.isActive():
                        d.destroy()
                    if d.isPersistent():
                        d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_TPM | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                except libvirt.libvirtError:
                    pass
            for s in c.listAllSecrets(0):
                s.undefine()



def assert_no_value(value: bytes, *blobs: bytes) -> None:
    """No raw, hex or base64 form of the value appears in any blob."""
    forms = {value, value.hex().encode(), base64.b64encode(value), base64.b64encode(value).rstrip(b"=")}
    for blob in blobs:
        for f in forms:
            assert f not in blob, "a secret value leaked into output"
