"""What migcoord is measured against: the manual virsh procedure an operator runs today, and a
minimal libvirt-python script making only the calls an evacuation plan needs."""
from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

# The operator's procedure for one guest (secret-dumpxml/define, get/set-value, migrate), as a
# shell script: part 1 runs it once, part 3 runs it per guest under `xargs -P N`.
MANUAL_SCRIPT = Path(__file__).resolve().parent / "manual-migrate.sh"


def manual_migrate(src: str, dst: str, vm: str, uuid: str) -> None:
    """One guest by hand: ``sh manual-migrate.sh SRC VM UUID DST``."""
    r = subprocess.run(["sh", str(MANUAL_SCRIPT), src, vm, uuid, dst], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"manual migration of {vm} to {dst} failed: {r.stderr.strip()[-1000:]}")


def xargs_pipeline(src: str, jobs: Sequence[tuple[str, str, str]], parallel: int) -> str:
    """The hand-made parallel loop: one line per guest (GUEST UUID DST) into
    ``xargs -P N -n 3 sh manual-migrate.sh SRC`` — the shell command line an operator would type."""
    lines = " ".join(shlex.quote(" ".join(job)) for job in jobs)
    return (f"printf '%s\\n' {lines} | xargs -P {int(parallel)} -n 3 "
            f"sh {shlex.quote(str(MANUAL_SCRIPT))} {shlex.quote(src)}")


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
