"""What each `scripts/lab` subcommand does (cli.py only parses the command line)."""
from __future__ import annotations

import argparse
import json
import os
import secrets as pysecrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid as uuidlib

from labkit.console import die, log
from labkit.guest_cpu import accel, lab_cpu, probe_cpu
from labkit.guests import VM_XML, define_secret, dirtier_disk, luks_disk, virsh, wait_dirtying
from labkit.hosts import (daemon_alive, ensure_ssh_keys, is_live, processes_of, start_host, stop_host,
                          wait_ready, write_hosts_file)
from labkit import stacks
from labkit.packages import ensure_packages
from labkit.state import (LAB_DIR, SSH_PORT, State, host_addr, host_uri, load_state, save_state,
                          ssh_uri)


def host_names(hosts: str) -> list[str]:
    names = [n.strip() for n in hosts.split(",") if n.strip()]
    for n in names:
        if not n.replace("-", "").isalnum():
            die(f"bad host name {n!r}: use letters, digits and dashes")
    return names


def add_hosts(state: State, names: list[str]) -> None:
    """Give each new host the lowest free index (its address) and a stable host UUID."""
    used = {h["index"] for h in state["hosts"].values()}
    for n in names:
        if n not in state["hosts"]:
            idx = next(i for i in range(200) if i not in used)
            used.add(idx)
            state["hosts"][n] = {"index": idx, "addr": host_addr(idx),
                                 "uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{n}.migcoord-lab"))}


def place_on_stacks(state: State, wanted: dict[str, str]) -> None:
    """Record each host's release and root (built first when missing); a running host stays on the
    release it runs: asking for another one is an error, not a silent restart."""
    for name, h in state["hosts"].items():
        rel = wanted.get(name, stacks.own_release())
        if daemon_alive(h) and h.get("stack", stacks.own_release()) != rel:
            die(f"lab host {name} is up on {h.get('stack')}, not {rel}: run scripts/lab down first")
        if not daemon_alive(h):
            root = stacks.ensure_root(rel)
            h["stack"], h["root"] = rel, str(root) if root else None
            h["versions"] = stacks.versions(root)


def cmd_up(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        die("the lab needs root (namespaces, bind mounts, libvirtd)")
    ensure_packages()
    names = host_names(args.hosts)
    state = load_state()
    want = accel()
    if state.get("accel", want) != want and any(daemon_alive(h) for h in state["hosts"].values()):
        die(f"the lab is up with accel={state['accel']}, not {want}: run scripts/lab down first")
    state["accel"] = want
    # Hosts whose daemon died (crashed run, reboot) are cleaned up and started afresh.
    for name, h in list(state["hosts"].items()):
        if not daemon_alive(h):
            stop_host(name, h)
            h.pop("pid", None)
    t0 = time.monotonic()
    add_hosts(state, names)
    place_on_stacks(state, stacks.host_stacks(os.environ.get("MIGCOORD_LAB_STACK"), list(state["hosts"])))
    save_state(state)
    write_hosts_file(state)
    ensure_ssh_keys(state)
    started = []
    for name, h in state["hosts"].items():
        if not daemon_alive(h):
            start_host(name, h)
            save_state(state)
            started.append(name)
    for name in started:
        wait_ready(name, state["hosts"][name])
    if "cpu" not in state:
        one_per_stack = {h.get("stack"): h for h in reversed(state["hosts"].values())}
        state["cpu"] = probe_cpu(state, list(one_per_stack.values()))
        save_state(state)
        log(f"guest CPU: {state['cpu']['name']} ({state['cpu']['xml'] or 'no <cpu> element'})")
    if started:
        log(f"started {', '.join(started)} in {time.monotonic() - t0:.1f}s (accel={state['accel']}, "
            f"cpu={state['cpu']['name']})")
    else:
        log("already up")
    print_env(state, as_json=False)


def cmd_kill(args: argparse.Namespace) -> None:
    """Simulate a crash: SIGKILL one host's libvirtd only (its QEMU/swtpm keep running).
    `scripts/lab up` then ends the orphans of that host by PID and starts it afresh."""
    state = load_state()
    h = state["hosts"].get(args.host)
    if h is None or not daemon_alive(h):
        die(f"lab host {args.host!r} is not up")
    os.kill(h["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_live(h["pid"]):
        time.sleep(0.02)
    log(f"killed libvirtd of {args.host} (pid {h['pid']})")


def cmd_down(args: argparse.Namespace) -> None:
    state = load_state()
    t0 = time.monotonic()
    for name, h in state["hosts"].items():
        stop_host(name, h)
    shutil.rmtree(LAB_DIR, ignore_errors=True)
    log(f"down in {time.monotonic() - t0:.1f}s")


def print_env(state: State, as_json: bool) -> None:
    if as_json:
        out = {name: {"uri": host_uri(h), "ssh_uri": ssh_uri(h), "addr": h["addr"], "host_uuid": h["uuid"],
                      "pid": h.get("pid"), "running": daemon_alive(h), "stack": h.get("stack"),
                      "root": h.get("root"), "versions": h.get("versions", {})}
               for name, h in state["hosts"].items()}
        ssh = {"user": "root", "port": SSH_PORT, "key": str(LAB_DIR / "ssh/id_ecdsa"),
               "known_hosts": str(LAB_DIR / "ssh/known_hosts")}
        print(json.dumps({"accel": state.get("accel"), "cpu": state.get("cpu"), "lab_dir": str(LAB_DIR),
                          "ssh": ssh, "hosts": out}, indent=2))
    else:
        for name, h in state["hosts"].items():
            print(f"{name.upper().replace('-', '_')}_URI={host_uri(h)}")
            print(f"{name.upper().replace('-', '_')}_SSH_URI='{ssh_uri(h)}'")
        print(f"LAB_SSH_KEY={LAB_DIR / 'ssh/id_ecdsa'}")
        print(f"LAB_KNOWN_HOSTS={LAB_DIR / 'ssh/known_hosts'}")


def cmd_cpu(args: argparse.Namespace) -> None:
    """Probe again (optionally trying ``--first`` before the usual candidates) and print the
    result as JSON; the lab's recorded choice is left as it is."""
    state = load_state()
    hosts = [h for h in state["hosts"].values() if daemon_alive(h)]
    if not hosts:
        die("the lab is not up (run: scripts/lab up)")
    print(json.dumps({"recorded": state.get("cpu"), "probe": probe_cpu(state, hosts, args.first)},
                     indent=2))


def cmd_stacks(args: argparse.Namespace) -> None:
    own = stacks.own_release()
    others = [r for r in stacks.RELEASES if r != own]
    print(" ".join([own] if args.own else others if args.others else [own, *others]))


def cmd_root(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        die("building a release root needs root (debootstrap, chroot)")
    ensure_packages()
    print(stacks.ensure_root(stacks.canonical(args.release)) or "/")


def cmd_chroot(args: argparse.Namespace) -> None:
    if not args.command:
        die("scripts/lab chroot RELEASE COMMAND...: no command given")
    root = stacks.ensure_root(stacks.canonical(args.release))
    cmd = stacks.chroot_command(root, args.command) if root else args.command
    raise SystemExit(subprocess.run(cmd).returncode)


def cmd_env(args: argparse.Namespace) -> None:
    print_env(load_state(), args.json)


def cmd_status(args: argparse.Namespace) -> None:
    state = load_state()
    if args.json:
        print_env(state, True)
        return
    if not state["hosts"]:
        print("lab is down")
        return
    for name, h in state["hosts"].items():
        alive = daemon_alive(h)
        doms = ""
        if alive:
            r = subprocess.run(["virsh", "-q", "-c", host_uri(h), "list", "--all", "--name"],
                               capture_output=True, text=True)
            doms = " ".join(r.stdout.split())
        v = h.get("versions", {})
        print(f"{name:10} {host_uri(h):32} {'up' if alive else 'DOWN':5} {h.get('stack', '?')} "
              f"(libvirt {v.get('libvirt', '?')}, QEMU {v.get('qemu', '?')}, swtpm {v.get('swtpm', '?')}) "
              f"procs={len(processes_of(h))} domains=[{doms}]")


def cmd_vm(args: argparse.Namespace) -> None:
    state = load_state()
    h = state["hosts"].get(args.on)
    if h is None or not daemon_alive(h):
        die(f"lab host {args.on!r} is not up (run: scripts/lab up --hosts ...)")
    value = pysecrets.token_bytes(32)
    if args.keyfile:
        fd = os.open(args.keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, value)
        os.close(fd)
    sid = define_secret(h, "vtpm", f"<name>{args.name}-vtpm</name>", args.secret == "private", value)
    disks, disk_sid = "", None
    if args.luks_disk:
        disks, disk_sid = luks_disk(h, args.name, args.on, args.luks_disk, args.disk_secret_by)
    if args.dirty_memory:
        disks += dirtier_disk()
    cpu = lab_cpu(state) if not args.cpu_model else \
        f"<cpu mode='custom'><model fallback='forbid'>{args.cpu_model}</model></cpu>"
    xml = VM_XML.format(accel=state.get("accel", "qemu"), name=args.name, memory=args.memory,
                        uuid=sid, disks=disks, cpu=cpu)
    with tempfile.NamedTemporaryFile("w", dir=LAB_DIR, suffix=".xml") as f:
        f.write(xml)
        f.flush()
        virsh(h, "define", f.name)
    if not args.no_start:
        virsh(h, "start", args.name)
        if args.dirty_memory:
            wait_dirtying(h, args.name)
    print(json.dumps({"name": args.name, "host": args.on, "uri": host_uri(h), "secret": sid,
                      "disk_secret": disk_sid}))
