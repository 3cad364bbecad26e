"""Lab guests: the domain XML (diskless, encrypted vTPM), secrets defined through virsh, LUKS
disk images, and the dirty-memory boot sector that keeps a migration in progress."""
from __future__ import annotations

import os
import secrets as pysecrets
import subprocess
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path

from labkit.console import die, log
from labkit.state import LAB_DIR, Host, host_uri

VM_XML = """<domain type='{accel}'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  {cpu}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {disks}
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'>
        <encryption secret='{uuid}'/>
      </backend>
    </tpm>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def virsh(h: Host, *args: str, input: str | None = None) -> str:
    r = subprocess.run(["virsh", "-q", "-c", host_uri(h), *args], capture_output=True, text=True,
                       input=input)
    if r.returncode != 0:
        die(f"virsh {args[0]} on {host_uri(h)} failed: {r.stderr.strip()}")
    return r.stdout


def define_secret(h: Host, usage_type: str, usage_xml: str, private: bool, value: bytes) -> str:
    sid = str(uuidlib.uuid4())
    xml = (f"<secret ephemeral='no' private='{'yes' if private else 'no'}'>"
           f"<uuid>{sid}</uuid><usage type='{usage_type}'>{usage_xml}</usage></secret>")
    with tempfile.TemporaryDirectory(dir=LAB_DIR) as d:
        p = Path(d) / "secret.xml"
        p.write_text(xml)
        virsh(h, "secret-define", str(p))
        # NOTE: the lab's own test value goes through a 0600 file that is removed at once,
        # never argv (tests scan argv for secret bytes).
        v = Path(d) / "value"
        fd = os.open(v, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, value)
        os.close(fd)
        virsh(h, "secret-set-value", sid, "--file", str(v), "--plain")
    return sid


# A 512-byte boot sector (16-bit real mode, hand-assembled) that rewrites 512 KiB of guest
# memory (0x10000-0x8FFFF) with a new value on every pass, forever. It gives fault tests a
# guest whose dirty rate beats a small bandwidth limit, so a migration stays in progress.
#   cli; xor dx,dx; start: mov bx,0x1000; outer: mov es,bx; xor di,di; mov cx,0x8000;
#   mov ax,dx; rep stosw; add bx,0x1000; cmp bx,0x9000; jb outer; inc dx; jmp start
DIRTIER = bytes.fromhex("fa31d2bb00108ec331ffb9008089d0f3ab81c3001081fb009072eb42ebe5")


def dirtier_disk() -> str:
    img = LAB_DIR / "shared-images" / "dirtier.img"
    if not img.exists():
        img.parent.mkdir(parents=True, exist_ok=True)
        sector = DIRTIER.ljust(510, b"\0") + b"\x55\xaa"
        img.write_bytes(sector.ljust(1 << 20, b"\0"))
    # NOTE: read-only, so libvirt treats it as safe to migrate without shared-storage flags.
    return (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>"
            f"<source file='{img}'/><target dev='vdz' bus='virtio'/><readonly/><boot order='1'/></disk>")


def wait_dirtying(h: Host, name: str, timeout: float = 90) -> None:
    """Return once the dirtier program really runs: the word it rewrites at 0x10000 is non-zero
    and changes. SeaBIOS takes seconds to boot it (longer on a loaded machine), and a migration
    started before that would converge at once."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        out = virsh(h, "qemu-monitor-command", "--hmp", name, "xp /1xw 0x10000").split()
        word = out[-1] if out else ""
        if word not in ("", "0x00000000") and last is not None and word != last:
            return
        last = word if word != "0x00000000" else None
        time.sleep(0.2)
    die(f"the dirty-memory program in {name} did not start within {timeout:.0f}s")


Runner = Callable[..., subprocess.CompletedProcess[str]]


def create_luks_image(path: Path, passphrase_file: Path, attempts: int = 5,
                      run: Runner = subprocess.run, sleep: Callable[[float], None] = time.sleep) -> None:
    """qemu-img create -f luks, retried: QEMU benchmarks PBKDF iterations and on a busy machine
    sometimes fails with "Unable to get accurate CPU usage" (LAB-NOTES); a retry succeeds.
    Any other error, or the last attempt failing, ends the lab with that error."""
    for attempt in range(1, attempts + 1):
        r = run(["qemu-img", "create", "-q", "--object", f"secret,id=sec0,file={passphrase_file}",
                 "-f", "luks", "-o", "key-secret=sec0", str(path), "16M"],
                capture_output=True, text=True)
        if r.returncode == 0:
            return
        if "accurate CPU usage" not in r.stderr or attempt == attempts:
            die(f"qemu-img create {path} failed: {r.stderr.strip()}")
        log(f"qemu-img create: PBKDF benchmark failed (attempt {attempt}), retrying")
        sleep(0.2 * attempt)


def luks_disk(h: Host, name: str, host: str, where: str, by: str = "uuid") -> tuple[str, str]:
    """A real LUKS image (qemu-img) plus its volume secret. 'shared': a directory every lab host
    sees at the same path; 'local': the host's private /var/lib/libvirt/images."""
    if where == "shared":
        images = LAB_DIR / "shared-images"
        inside = str(images / f"{name}.luks")
    else:
        images = LAB_DIR / "hosts.d" / host / "var/lib/libvirt/images"
        inside = f"/var/lib/libvirt/images/{name}.luks"
    images.mkdir(parents=True, exist_ok=True)
    passphrase = pysecrets.token_hex(16).encode()
    sid = define_secret(h, "volume", f"<volume>{inside}</volume>", False, passphrase)
    with tempfile.TemporaryDirectory(dir=LAB_DIR) as d:
        pf = Path(d) / "pass"
        fd = os.open(pf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, passphrase)
        os.close(fd)
        create_luks_image(images / f"{name}.luks", pf)
    return (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>"
            f"<source file='{inside}'><encryption format='luks'>"
            f"<secret type='passphrase' {'usage' if by == 'usage' else 'uuid'}="
            f"'{inside if by == 'usage' else sid}'/></encryption></source>"
            f"<target dev='vda' bus='virtio'/></disk>"), sid
