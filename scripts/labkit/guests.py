"""Lab guests: the domain XML (diskless, encrypted vTPM), secrets defined through virsh, LUKS
disk images, and the dirty-memory boot sector that keeps a bandwidth-limited migration in progress."""
from __future__ import annotations

import hashlib
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


# The dirty-memory guest: a boot sector (178 bytes of 16-bit code, assembled with nasm from the
# source below) that keeps a migration limited to a small bandwidth in progress, under KVM and
# under TCG alike.
#  1. It enters "unreal mode" (a flat 4 GiB data segment through a tiny GDT, PE switched on and
#     off) and writes a non-zero dword (its own address) at the start of every 4 KiB page of
#     [1 MiB, FILL_END), clamped to the RAM size from CMOS 0x34/0x35, then stores the fill's end
#     at 0x500. QEMU sends a zero page almost for free but any other page in full, so these
#     64 MiB make the first migration pass alone take ~70 s at 1 MiB/s (measured, KVM and TCG),
#     whatever QEMU's dirty-page tracking does. One store per page, not a full fill: the KVM of
#     these machines (nested, kvm_pvm) emulates 16-bit code instruction by instruction, and a
#     full 64 MiB fill took over 90 s there. Not more than 64 MiB: a stalled migration
#     (test_faults) can only be seen stalling after the first pass, well within its 120 s.
#  2. Then, forever, it writes a pass counter into each page of 0x10000-0x8FFFF (512 KiB, as the
#     lab's earlier program did): a dirty set a 1 MiB/s migration never catches up with, while
#     an unlimited one (loopback) still completes in seconds. Each pass switches PE on and off,
#     which makes TCG flush its TLB. Without that, TCG apparently marks a page dirty only on the
#     first write after its TLB entry is filled: a tight loop was seen once and the migration
#     converged (the earlier program); with it, TCG reports ~250 dirty pages/s, as KVM does.
#   bits 16
#   org 0x7c00
#   FILL_END equ 0x4100000       ; 1 MiB + 64 MiB
#       cli
#       xor ax, ax
#       mov ds, ax
#       mov es, ax
#       mov ss, ax
#       mov sp, 0x7c00
#       in al, 0x92              ; fast A20 on
#       or al, 2
#       out 0x92, al
#       lgdt [gdtr]
#       call unreal
#       mov al, 0x35             ; CMOS 0x34/0x35: RAM above 16 MiB in 64 KiB blocks
#       out 0x70, al
#       in al, 0x71
#       mov ah, al
#       mov al, 0x34
#       out 0x70, al
#       in al, 0x71
#       movzx ebx, ax
#       shl ebx, 16
#       add ebx, 0x1000000       ; ebx = top of RAM below 4 GiB
#       cmp ebx, FILL_END
#       jb .top
#       mov ebx, FILL_END
#   .top:
#       mov edi, 0x100000
#   fill:
#       mov [edi], edi           ; non-zero: the page is no longer a zero page
#       add edi, 0x1000
#       cmp edi, ebx
#       jb fill
#       mov [0x500], edi         ; the fill is done: its end, for wait_dirtying
#       xor edx, edx
#   again:
#       inc edx
#       mov edi, 0x10000
#   dirty:
#       mov [edi], edx           ; the pass counter into each page of 0x10000-0x8FFFF
#       add edi, 0x1000
#       cmp edi, 0x90000
#       jb dirty
#       call unreal              ; PE on and off: TCG flushes its TLB
#       jmp again
#   unreal:                      ; DS, ES: base 0, limit 4 GiB (kept back in real mode)
#       mov eax, cr0
#       or al, 1
#       mov cr0, eax
#       jmp short $+2
#       mov bx, 8
#       mov ds, bx
#       mov es, bx
#       and al, 0xfe
#       mov cr0, eax
#       ret
#   gdtr: dw 15
#         dd gdt
#   gdt:  dq 0
#         dq 0x00cf92000000ffff  ; flat 4 GiB read/write data
DIRTIER = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007ce4920c02e6920f01169c7ce86b00b035e670e47188c4b034e670e471660fb7d866"
    "c1e3106681c3000000016681fb00001004720666bb0000100466bf000010006667893f6681c7001000006639df"
    "72f066893e00056631d2664266bf00000100666789176681c7001000006681ff0000090072ece80200ebdf0f20"
    "c00c010f22c0eb00bb08008edb8ec324fe0f22c0c30f00a27c00000000000000000000ffff00000092cf00")
FILL_START = 0x100000   # the fill's first byte, as in the program
FILL_END = 0x4100000    # its end on a guest with enough RAM (FILL_END above)
FILL_DONE_AT = 0x500    # where the program stores the fill's end once it is done
DIRTY_WORD = 0x10000    # the first word the endless loop rewrites with its pass counter
PAGE = 0x1000


def dirtier_disk() -> str:
    # NOTE: the image is named after the program's bytes: a lab directory that still holds an
    # image of an earlier program gets a new one.
    img = LAB_DIR / "shared-images" / f"dirtier-{hashlib.sha256(DIRTIER).hexdigest()[:12]}.img"
    if not img.exists():
        img.parent.mkdir(parents=True, exist_ok=True)
        sector = DIRTIER.ljust(510, b"\0") + b"\x55\xaa"
        tmp = img.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(sector.ljust(1 << 20, b"\0"))
        tmp.replace(img)
    # NOTE: read-only, so libvirt treats it as safe to migrate without shared-storage flags.
    return (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>"
            f"<source file='{img}'/><target dev='vdz' bus='virtio'/><readonly/><boot order='1'/></disk>")


def read_word(h: Host, name: str, addr: int) -> int | None:
    """The 32-bit word at guest-physical ``addr`` (HMP ``xp``), or None if the reply is not one."""
    out = virsh(h, "qemu-monitor-command", "--hmp", name, f"xp /1xw {addr:#x}").split()
    try:
        return int(out[-1], 16) if out else None
    except ValueError:
        return None


def fill_end_plausible(end: int | None) -> bool:
    """Whether a word read at FILL_DONE_AT can be the end the program stored there after its fill
    (before that, the BIOS's leftovers): above FILL_START, at most FILL_END, page-aligned."""
    return end is not None and FILL_START < end <= FILL_END and end % PAGE == 0


def wait_dirtying(h: Host, name: str, timeout: float = 90) -> None:
    """Return once the dirtier program really runs: its fill of guest RAM with non-zero data is
    complete (the end it stores at 0x500, and the last page filled holds its own address) and the
    word it rewrites at 0x10000 is non-zero and changes. SeaBIOS takes seconds to boot it (longer
    on a loaded machine), and a migration started before that would converge at once."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    filled = False
    while time.monotonic() < deadline:
        if not filled:
            end = read_word(h, name, FILL_DONE_AT)
            # The fill wrote each page's address into its first dword: check the last page too.
            filled = end is not None and fill_end_plausible(end) and read_word(h, name, end - PAGE) == end - PAGE
        else:
            word = read_word(h, name, DIRTY_WORD)
            if word and last is not None and word != last:
                return
            last = word or None
        time.sleep(0.2)
    die(f"the dirty-memory program in {name} did not {'run' if filled else 'fill its memory'} "
        f"within {timeout:.0f}s")


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
