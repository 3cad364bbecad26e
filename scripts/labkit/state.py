"""Where the lab lives: its directory and state.json, each host's address and URIs.

Several labs can run side by side (e.g. a developer's and a test run's) when each has its
own MIGCOORD_LAB_DIR and MIGCOORD_LAB_FIRST_ADDR: addresses and migration ports follow it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# A lab host's record in state.json: index, addr, uuid, pid, mntns, utsns.
Host = dict[str, Any]
# state.json: {"hosts": {name: Host}, "accel": "kvm" | "qemu", "cpu": {"name", "xml", "tried"}}.
State = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]  # the project checkout
LAB_DIR = Path(os.environ.get("MIGCOORD_LAB_DIR", "/var/tmp/migcoord-lab"))
STATE = LAB_DIR / "state.json"
PORT = 16509
SSH_PORT = 22
FIRST_ADDR = int(os.environ.get("MIGCOORD_LAB_FIRST_ADDR", "11"))


def load_state() -> State:
    try:
        return json.loads(STATE.read_text())
    except FileNotFoundError:
        return {"hosts": {}}


def save_state(state: State) -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, STATE)


def host_addr(index: int) -> str:
    return f"127.0.0.{FIRST_ADDR + index}"


def migration_port_min(h: Host) -> int:
    """Each host's 20 migration ports follow its address, so side-by-side labs do not collide."""
    return 49200 + (int(h["addr"].rsplit(".", 1)[1]) - 11) * 20


def host_uri(h: Host) -> str:
    return f"qemu+tcp://{h['addr']}/system"


def ssh_uri(h: Host) -> str:
    """libvirt over SSH (libssh2 transport: it takes a known_hosts file and verifies against it)."""
    ssh = LAB_DIR / "ssh"
    return (f"qemu+libssh2://root@{h['addr']}/system?keyfile={ssh / 'id_ecdsa'}"
            f"&known_hosts={ssh / 'known_hosts'}&sshauth=privkey")
