"""Lab hosts: one libvirtd (and sshd) per host in its own mount + UTS namespace, their
configuration files, start-up, readiness, and ending every process of a host by PID.

Why each setting is there is documented in ../shared/LAB-NOTES.md; the NOTE comments
repeat the non-obvious.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from labkit.console import die, log
from labkit.stacks import system_mounts
from labkit.state import LAB_DIR, PORT, SSH_PORT, Host, State, host_uri, migration_port_min

# Directories every host gets a private copy of (bind-mounted inside its namespace).
PRIVATE_DIRS = ["/etc/libvirt", "/var/lib/libvirt", "/run/libvirt", "/var/log/libvirt",
                "/var/cache/libvirt", "/var/log/swtpm", "/var/lib/swtpm-localca", "/run/sshd"]
# NOTE: libvirt probes every QEMU binary at start (~4 s each); hiding the ones we never
# use halves a cold start.
HIDDEN_BINARIES = ["/usr/bin/qemu-system-i386", "/usr/bin/qemu-system-x86_64-microvm"]


# ---------------------------------------------------------------- processes

def ns_inode(pid: int, ns: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{ns}")
    except OSError:
        return None


def is_live(pid: int) -> bool:
    """True if pid exists and is not a zombie (PID 1 here reaps late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def processes_of(h: Host) -> list[int]:
    """Every live process inside this host's namespaces (libvirtd, QEMU, swtpm, sshd)."""
    mnt, uts = h.get("mntns"), h.get("utsns")
    if not mnt:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if ns_inode(pid, "mnt") == mnt and ns_inode(pid, "uts") == uts and is_live(pid):
            found.append(pid)
    return found


def daemon_alive(h: Host) -> bool:
    pid: int | None = h.get("pid")
    return pid is not None and pid != 0 and is_live(pid) and ns_inode(pid, "mnt") == h.get("mntns")


def port_open(addr: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((addr, port)) == 0


# ---------------------------------------------------------------- host config

def write_hosts_file(state: State) -> None:
    """One /etc/hosts shared by all hosts; rewritten in place so bind mounts see it."""
    path = LAB_DIR / "hosts"
    lines = ["127.0.0.1 localhost"]
    lines += [f"{h['addr']} {name}" for name, h in state["hosts"].items()]
    with open(path, "a+") as f:
        f.seek(0)
        f.truncate()
        f.write("\n".join(lines) + "\n")


def host_root(h: Host) -> Path | None:
    """The release root a host runs in (stacks.py), None when it runs on this machine's own OS."""
    return Path(h["root"]) if h.get("root") else None


def write_host_config(name: str, h: Host) -> Path:
    root = LAB_DIR / "hosts.d" / name
    for d in PRIVATE_DIRS:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    etc = root / "etc/libvirt"
    (etc / "libvirtd.conf").write_text(
        'listen_tls = 0\nlisten_tcp = 1\n'
        f'listen_addr = "{h["addr"]}"\ntcp_port = "{PORT}"\n'
        'auth_tcp = "none"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
        f'host_uuid = "{h["uuid"]}"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
    pmin = migration_port_min(h)
    # NOTE: stdio_handler=file because there is no virtlogd; cgroup_controllers=[] or libvirt
    # leaves machine cgroup folders on the real host; namespaces=[] keeps QEMU in the host's
    # mount namespace so our bind mounts are what it sees.
    (etc / "qemu.conf").write_text(
        'stdio_handler = "file"\nuser = "root"\ngroup = "root"\n'
        'swtpm_user = "root"\nswtpm_group = "root"\n'
        'dynamic_ownership = 0\nremember_owner = 0\ncgroup_controllers = [ ]\n'
        'namespaces = [ ]\nsecurity_driver = "none"\n'
        f'migration_port_min = {pmin}\nmigration_port_max = {pmin + 19}\n')
    # NOTE: libvirt 9.0 resolves 'libvirt-qemu' before reading qemu.conf; add it (and kvm)
    # to per-host copies instead of touching the real /etc/passwd.
    base = host_root(h) or Path("/")
    passwd = (base / "etc/passwd").read_text()
    group = (base / "etc/group").read_text()
    if "\nkvm:" not in "\n" + group:
        group += "kvm:x:64999:\n"
    if "\nlibvirt-qemu:" not in "\n" + group:
        group += "libvirt-qemu:x:64055:\n"
    if "\nlibvirt-qemu:" not in "\n" + passwd:
        passwd += "libvirt-qemu:x:64055:64055:libvirt lab:/var/lib/libvirt:/usr/sbin/nologin\n"
    (root / "passwd").write_text(passwd)
    (root / "group").write_text(group)
    (root / "hidden").write_text("")
    os.chmod(root / "hidden", 0o644)
    return root


def ensure_ssh_keys(state: State) -> None:
    """A lab client key (authorised on every host), one host key per host, and a known_hosts
    file pinning them, so SSH checks and qemu+libssh2:// URIs verify host keys for real."""
    d = LAB_DIR / "ssh"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (d / "id_ecdsa").exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", "migcoord-lab",
                        "-f", str(d / "id_ecdsa")], check=True)
    (d / "authorized_keys").write_text((d / "id_ecdsa.pub").read_text())
    lines = []
    for name, h in state["hosts"].items():
        key = LAB_DIR / "hosts.d" / name / "ssh_host_ecdsa_key"
        key.parent.mkdir(parents=True, exist_ok=True)
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", name,
                            "-f", str(key)], check=True)
        kind, blob = key.with_suffix(".pub").read_text().split()[:2]
        lines.append(f"{h['addr']},{name} {kind} {blob}")
    (d / "known_hosts").write_text("\n".join(lines) + "\n")


def write_sshd_config(name: str, h: Host) -> Path:
    root = LAB_DIR / "hosts.d" / name
    conf = root / "sshd_config"
    conf.write_text(
        f"ListenAddress {h['addr']}\nPort {SSH_PORT}\nHostKey {root / 'ssh_host_ecdsa_key'}\n"
        f"PidFile /run/sshd/sshd.pid\nAuthorizedKeysFile {LAB_DIR / 'ssh/authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPrintMotd no\nSubsystem sftp internal-sftp\n")
    return conf


# ---------------------------------------------------------------- start / stop

def start_host(name: str, h: Host) -> None:
    """Start the host's sshd and libvirtd in a new mount + UTS namespace: on this machine's own OS, or
    chrooted into its release root (with /proc, /sys and /dev of this machine, and the lab directory at
    the same path, so every lab path means the same inside and out)."""
    root = write_host_config(name, h)
    sshd_conf = write_sshd_config(name, h)
    rel = host_root(h)
    at = str(rel) if rel else ""  # where the host's / is, seen from this machine
    mounts = []
    if rel:
        (rel / LAB_DIR.relative_to("/")).mkdir(parents=True, exist_ok=True)
        mounts += [*system_mounts(at), f"mount --bind {LAB_DIR} {at}{LAB_DIR}"]
    for d in PRIVATE_DIRS:
        Path(at + d).mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --bind {root / d.lstrip('/')} {at}{d}")
    for f, src in (("/etc/passwd", root / "passwd"), ("/etc/group", root / "group"),
                   ("/etc/hosts", LAB_DIR / "hosts")):
        mounts.append(f"mount --bind {src} {at}{f}")
    for b in HIDDEN_BINARIES:
        if os.path.exists(at + b):
            mounts.append(f"mount --bind {root / 'hidden'} {at}{b}")
    # sshd daemonises inside the host's namespaces: it sees that host's files and sockets,
    # and `down` ends it with everything else in the namespace.
    daemons = f"/usr/sbin/sshd -f {sshd_conf} -E {root / 'sshd.log'}; " \
              "exec libvirtd --listen --pid-file /run/libvirt/libvirtd.pid"
    enter = f"exec chroot {at} /bin/sh -c {shlex.quote(daemons)}" if rel else daemons
    script = "set -e; " + "; ".join(mounts) + f"; hostname {name}; " + enter
    with open(LAB_DIR / f"{name}.daemon.log", "ab") as out:  # the daemons keep their own copy
        proc = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    h["pid"] = proc.pid
    # Record the namespaces at once, so a crash before readiness can still be cleaned up.
    for _ in range(200):
        if ns_inode(proc.pid, "mnt") != ns_inode(os.getpid(), "mnt") or proc.poll() is not None:
            break
        time.sleep(0.01)
    h["mntns"], h["utsns"] = ns_inode(proc.pid, "mnt"), ns_inode(proc.pid, "uts")


def wait_ready(name: str, h: Host, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon_alive(h):
            logs = [LAB_DIR / f"{name}.daemon.log", LAB_DIR / "hosts.d" / name / "var/log/libvirt/libvirtd.log"]
            tail = "".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())
            die(f"libvirtd for host {name!r} exited during start-up:\n{tail}")
        if port_open(h["addr"], PORT):
            r = subprocess.run(["virsh", "-q", "-c", host_uri(h), "hostname"],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() == name:
                return
        time.sleep(0.2)
    die(f"libvirtd for host {name!r} did not answer on {h['addr']}:{PORT} within {timeout:.0f}s")


def stop_host(name: str, h: Host) -> None:
    """End every process in the host's namespaces, by PID: TERM, then KILL."""
    pids = processes_of(h)
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(is_live(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if is_live(p)]
        if not pids:
            break
    if pids:
        log(f"warning: host {name}: processes {pids} did not exit")
    # The bind mounts live only in the host's mount namespace: they vanish with its last process.
