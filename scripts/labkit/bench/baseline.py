"""What migcoord is measured against: the manual virsh procedure an operator runs today, and a
minimal libvirt-python script making only the calls an evacuation plan needs."""
from __future__ import annotations

import subprocess
from pathlib import Path


def virsh(uri: str, *args: str) -> str:
    r = subprocess.run(["virsh", "-q", "-c", uri, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"virsh {args[0]} on {uri} failed: {r.stderr.strip()}")
    return r.stdout


def manual_secret_copy(src: str, dst: str, uuid: str, tmp: Path) -> None:
    """What an operator does today, one virsh process per step."""
    xml = tmp / f"{uuid}.xml"
    xml.write_text(virsh(src, "secret-dumpxml", uuid))
    virsh(dst, "secret-define", str(xml))
    value = virsh(src, "secret-get-value", uuid).strip()  # base64
    virsh(dst, "secret-set-value", uuid, "--base64", value)


def manual_migrate(src: str, dst: str, vm: str, uuid: str, tmp: Path) -> None:
    manual_secret_copy(src, dst, uuid, tmp)
    virsh(src, "migrate", "--live", "--p2p", "--persistent", "--undefinesource", vm, dst)



MINIMAL_PLAN = r'''
"""Only the libvirt calls an evacuation plan needs (the baseline for migcoord's dry run)."""
import json, sys, xml.etree.ElementTree as ET
import libvirt
libvirt.registerErrorHandler(lambda _c, _e: None, None)
src_uri, dst_uris = sys.argv[1], sys.argv[2:]
src = libvirt.open(src_uri)
dsts = {u: libvirt.open(u) for u in dst_uris}
doms = [(d, True) for d in src.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
doms += [(d, False) for d in src.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE
                                                | libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)]
free = {u: c.getFreeMemory() for u, c in dsts.items()}
caps = {u: c.getDomainCapabilities(None, None, None, None, 0) for u, c in dsts.items()}
src_secrets, dst_has = {}, {}
plan = []
for d, live in doms:
    root = ET.fromstring(d.XMLDesc(0))
    name = root.findtext("name")
    mem = int(root.findtext("currentMemory") or root.findtext("memory")) * 1024
    uuids = {e.get("secret") for e in root.iter("encryption") if e.get("secret")}
    uuids |= {e.get("uuid") for e in root.iter("secret") if e.get("uuid")}
    for s in uuids:
        if s not in src_secrets:
            src_secrets[s] = src.secretLookupByUUIDString(s).XMLDesc(0)
            for u, c in dsts.items():
                try:
                    c.secretLookupByUUIDString(s)
                    dst_has[(u, s)] = True
                except libvirt.libvirtError:
                    dst_has[(u, s)] = False
    plan.append((name, mem, live, sorted(uuids)))
out = []
for name, mem, live, uuids in sorted(plan, key=lambda p: (-p[1], p[0])):
    fits = [u for u in dsts if free[u] >= mem]
    best = max(fits, key=lambda u: free[u]) if fits else None
    if best:
        free[best] -= mem
    out.append({"domain": name, "mode": "live" if live else "offline", "destination": best,
                "secrets": [{"uuid": s, "action": "confirm" if dst_has[(best, s)] else "provision"}
                            for s in uuids] if best else []})
print(json.dumps({"domains": out}))
'''
