"""The lab as tests and benchmarks see it: URIs, connections and independent witnesses.

Tests give every VM a unique name; after each test every domain and secret on every lab
host is removed (``wipe``), so tests cannot leak into each other. The libvirt Python binding
and the hosts' on-disk secret store are used as independent witnesses of what migcoord did.
The lab itself is driven through its command line (``run_lab``), as a user would.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets as pysecrets
import subprocess
import sys
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from labkit.guests import VM_XML
from labkit.state import ROOT

__all__ = ["ACCEPT_SHARED_IMAGE", "HOSTS", "LAB", "ROOT", "Lab", "assert_no_value", "run_lab"]

LAB = ROOT / "scripts" / "lab"
HOSTS = "src,dst,dst2"
# NOTE: the dirty-memory guest (``Lab.vm(..., dirty_memory=True)``) boots from a read-only image in the lab's
# shared directory; without SSH whether it exists on the destination is unknown (STORAGE-ON-DEST, a decisive
# unknown since issue 19.4): migcoord runs of it accept that unknown, as the image is there.
ACCEPT_SHARED_IMAGE = ("--accept-unknown",)

libvirt.registerErrorHandler(lambda _c, _e: None, None)


def run_lab(*args: str, check: bool = True, timeout: float = 300) -> str:
    """``scripts/lab ARGS`` with this interpreter; its stdout. Raises when it fails (``check``)."""
    r = subprocess.run([sys.executable, str(LAB), *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"scripts/lab {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


@dataclass
class Lab:
    env: dict[str, Any]  # `scripts/lab env --json`
    conns: dict[str, libvirt.virConnect] = field(default_factory=dict)
    lab_timeout: float = 300  # for each `scripts/lab` command this client runs

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

    def close(self) -> None:
        for c in self.conns.values():
            with contextlib.suppress(libvirt.libvirtError):
                c.close()
        self.conns.clear()

    def restart_down_hosts(self, hosts: str = HOSTS) -> None:
        """scripts/lab up: starts the hosts, restarting any whose daemon died (fault tests), then
        refreshes what the client knows about them (PIDs change) and drops stale connections."""
        run_lab("up", "--hosts", hosts, timeout=self.lab_timeout)
        self.env = json.loads(run_lab("env", "--json", timeout=self.lab_timeout))
        for h in list(self.conns):
            try:
                alive = self.conns[h].isAlive()
            except libvirt.libvirtError:
                alive = False
            if not alive:
                self.conns.pop(h)

    def vm(self, name: str, on: str = "src", **opts: object) -> dict[str, Any]:
        """scripts/lab vm NAME --on HOST [--secret ...] [--luks-disk ...] ... → {name, secret, ...}."""
        args = ["vm", name, "--on", on]
        for k, v in opts.items():
            if v is True:
                args.append(f"--{k.replace('_', '-')}")
            elif v not in (None, False):
                args += [f"--{k.replace('_', '-')}", str(v)]
        return json.loads(run_lab(*args, timeout=self.lab_timeout))

    def define_fast(self, host: str, name: str, memory_mib: int, start: bool) -> str:
        """The same guest as `scripts/lab vm` (its VM_XML and the lab's recorded CPU), defined
        through the libvirt API, much faster for hundreds of guests: one vTPM secret (readable,
        value set) + one domain; started only if asked. Returns the secret's UUID."""
        c = self.conn(host)
        sid = str(uuidlib.uuid4())
        c.secretDefineXML(f"<secret ephemeral='no' private='no'><uuid>{sid}</uuid>"
                          f"<usage type='vtpm'><name>{name}-vtpm</name></usage></secret>", 0
                          ).setValue(pysecrets.token_bytes(32), 0)
        xml = VM_XML.format(accel=self.env.get("accel") or "qemu", name=name, memory=memory_mib,
                            uuid=sid, disks="", cpu=self.env["cpu"]["xml"])
        dom = c.defineXML(xml)
        if start:
            dom.create()
        return sid

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
