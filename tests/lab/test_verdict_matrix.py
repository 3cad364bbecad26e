"""Verdict-truth matrix: for each real scenario, what `migcoord check` says versus what libvirt does.

For every scenario: (a) the verdict — `migcoord check NAME --json` with the flags the migration will use
(exit 0 = go, 1 = block); (b) the truth — the same migration done here directly through libvirt-python
(`virDomainMigrateToURI3` with ``coordinator.core.params.migration_flags`` of the same policy; a secret the
destination lacks is provisioned byte-exact first when a value is known, as migcoord would), plus, for the
scenarios about whether the guest would run there, a start on the destination after an offline migration.
The test asserts verdict == truth (house rule 13).

Guests are started paused (VIR_DOMAIN_START_PAUSED) unless the scenario is about a running guest: QEMU is
started and configured exactly as for a running one (live CPU definition, disks, swtpm), libvirt's migration
rules treat running and paused alike (qemuMigrationSrcIsAllowed/IsSafe, DOMAIN-STATE), and a booting SeaBIOS
costs ≈ 2.5 CPU-seconds per guest on this 2-core machine. state-running-live, state-job-in-progress-live,
cpu-none-live, state-running-offline, state-paused-live (running, then suspended), secret-missing-readable-source
and storage-local-disk-no-flags run for real.

``MIGCOORD_MATRIX_OUT=FILE`` records every scenario's (verdict, truth) as JSON (``scripts/verdict-matrix``).
Scenarios whose truth this machine cannot produce are listed in ``NOT_IN_MATRIX`` with the reason.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import libvirt
import pytest

from coordinator.cli import cmd_check as command
from coordinator.cli import invocation
from coordinator.cli.main import build_parser
from coordinator.core.domain.secret_refs import union_refs, unique_secret_refs
from coordinator.core.errors import MigcoordError
from coordinator.core.params import MigrationPolicy, migration_flags

from labkit.client import Lab

if TYPE_CHECKING:
    from conftest import LabForTests  # tests/lab/conftest.py: the lab fixture's class

# Scenarios this machine cannot produce the truth of (or where the verdict cannot be a yes/no), with why.
NOT_IN_MATRIX: dict[str, str] = {
    "cpu-plain-host-model-or-passthrough": (
        "on this nested-KVM host QEMU aborts at start ('failed to set MSR 0x10a') for plain host-model and "
        "host-passthrough on the source as much as on the destination: the failure is KVM's, no libvirt rule "
        "and no pre-flight check can see it; the matrix uses the lab's probed variant (lab.env['cpu'])"),
    "cpu-different-host-cpus": (
        "every lab host runs on the same physical CPU, so a destination whose host CPU lacks a feature the "
        "source offers (the real CPU-INCOMPATIBLE case for a live guest) cannot be built here"),
    "network-live-guest": (
        "a running guest on a libvirt network needs a bridge or tap device in the shared network namespace; "
        "creating one changes the real host's network (workplace rule): networks are covered offline"),
    "storage-shared-filesystem-detected": (
        "libvirt accepts a disk on NFS/GFS2/OCFS2/Ceph... without --unsafe; the lab has only local "
        "filesystems (ext4 here), so only the 'not detected as shared' side can be produced"),
    "secret-private-dest-copy-different-value-without-reset": (
        "the value of a private destination copy cannot be read through the API: the verdict is honestly "
        "'GO with unknowns' (SECRET-UNVERIFIABLE), not go or block; with --reset-secret-values it is in the "
        "matrix (secret-dst-private-differs-reset)"),
    "tpm-caps-missing-on-destination": (
        "every lab host runs the same QEMU/libvirt/swtpm binaries: a destination lacking a TPM model or "
        "version cannot be built without faking capabilities"),
    "storage-cache-mode-without-drop-cache": (
        "QEMU 7.2 has migration-file-drop-cache, so libvirt 9.0 never refuses for the cache mode here"),
}

# Scenarios that exist only where the lab's guests run under KVM (``scripts/lab env --json`` → accel): under
# TCG (MIGCOORD_LAB_ACCEL=tcg, or no /dev/kvm) their source guest cannot even be started, so there is no
# truth to compare with. They run (and must agree) wherever the lab has KVM, as in CI.
NEEDS_KVM: dict[str, str] = {
    "cpu-host-passthrough-live": (
        "libvirt refuses to start a TCG guest with host-passthrough on the source itself ('CPU mode "
        "host-passthrough for x86_64 qemu domain on x86_64 host is not supported by hypervisor'); the offline "
        "scenario still runs and shows the destination refusing it"),
}

LIVE_FLAGS_NOTE = ("flags from coordinator.core.params.migration_flags "
                   "(PEER2PEER|LIVE|PERSIST_DEST|UNDEFINE_SOURCE, ...)")
MEMORY_MIB = 64


def libvirt_flags(policy: MigrationPolicy) -> int:
    """The VIR_MIGRATE_* bits migcoord's Guest.migrate would pass for this policy."""
    bits = 0
    for name in migration_flags(policy):
        bits |= getattr(libvirt, f"VIR_MIGRATE_{name}")
    return bits


# ---------------------------------------------------------------- building guests

@dataclass
class Setup:
    name: str
    args: list[str] = field(default_factory=list)          # extra `migcoord check` arguments
    values: dict[str, bytes] = field(default_factory=dict)  # values the operator could give (by UUID)
    reset: dict[str, bytes] = field(default_factory=dict)   # --reset-secret-values: set on dst before
    during: Callable[[], Any] | None = None                 # context manager factory around verdict+truth
    cleanup: list[Callable[[], Any]] = field(default_factory=list)


class World:
    """Helpers to build scenario guests through the libvirt API (faster than scripts/lab vm)."""

    def __init__(self, lab: LabForTests, name: str, tmp: Path) -> None:
        self.lab, self.name, self.tmp = lab, name, tmp
        self.accel = lab.env["accel"]
        self.cpu = lab.env["cpu"]["xml"]

    def conn(self, host: str) -> libvirt.virConnect:
        return self.lab.conn(host)

    def images(self, host: str) -> Path:
        """The host's private /var/lib/libvirt/images, as seen from outside its namespace."""
        p = self.lab.dir / "hosts.d" / host / "var/lib/libvirt/images"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def shared(self) -> Path:
        p = self.lab.dir / "shared-images"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def secret(self, host: str, *, usage_type: str = "vtpm", usage_id: str | None = None,
               value: bytes | None = None, private: bool = False, ephemeral: bool = False,
               uuid: str | None = None) -> tuple[str, bytes]:
        uuid = uuid or str(uuidlib.uuid4())
        value = value if value is not None else os.urandom(32)
        usage_id = usage_id or f"{self.name}-vtpm"
        el = {"vtpm": "name", "volume": "volume"}[usage_type]
        xml = (f"<secret ephemeral='{'yes' if ephemeral else 'no'}' private='{'yes' if private else 'no'}'>"
               f"<uuid>{uuid}</uuid><usage type='{usage_type}'><{el}>{usage_id}</{el}></usage></secret>")
        self.conn(host).secretDefineXML(xml, 0).setValue(value, 0)
        return uuid, value

    def xml(self, name: str | None = None, *, cpu: str | None = None, tpm: str | None = "",
            tpm_model: str = "tpm-crb", tpm_version: str = "2.0", devices: str = "",
            uuid: str | None = None, memory: int = MEMORY_MIB, machine: str | None = None) -> str:
        """A small guest; ``tpm``: None for no TPM, "" for a TPM without encryption, else the secret UUID.
        ``machine``: by default the newest q35 machine type both hosts know, as a fleet in a rolling upgrade
        pins it (a guest started as pc-q35-10.0 cannot go back to QEMU 7.2: UPGRADE shows that)."""
        cpu = self.cpu if cpu is None else cpu
        machine = machine or self.pinned_machine()
        tpm_xml = ""
        if tpm is not None:
            enc = f"<encryption secret='{tpm}'/>" if tpm else ""
            tpm_xml = (f"<tpm model='{tpm_model}'><backend type='emulator' version='{tpm_version}'>{enc}"
                       f"</backend></tpm>")
        return (f"<domain type='{self.accel}'><name>{name or self.name}</name>"
                + (f"<uuid>{uuid}</uuid>" if uuid else "")
                + f"<memory unit='MiB'>{memory}</memory><vcpu>1</vcpu>"
                f"<os><type arch='x86_64' machine='{machine}'>hvm</type></os>{cpu}"
                f"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devices}{tpm_xml}"
                f"<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>")

    def pinned_machine(self) -> str:
        if not hasattr(self, "_pinned"):
            self._pinned = [m for m in q35_machines(self, "src") if m in set(q35_machines(self, "dst"))][-1]
        return self._pinned

    def define(self, xml: str, host: str = "src", start: bool = True, running: bool = False) -> libvirt.virDomain:
        """Define; ``start``: start it paused (see the module's docstring), or running with ``running``."""
        dom = self.conn(host).defineXML(xml)
        if start:
            dom.createWithFlags(0 if running else libvirt.VIR_DOMAIN_START_PAUSED)
        return dom

    def vtpm_guest(self, *, start: bool = True, private: bool = False, running: bool = False,
                   **kw: Any) -> tuple[str, bytes]:
        """The usual guest: an encrypted vTPM whose secret is on the source. Returns (uuid, value)."""
        sid, value = self.secret("src", private=private)
        self.define(self.xml(tpm=sid, **kw), start=start, running=running)
        return sid, value

    def image(self, path: Path, fmt: str = "qcow2", size: str = "16M") -> None:
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True, timeout=60)

    def luks(self, path: Path, passphrase: bytes) -> None:
        pf = self.tmp / "luks-pass"
        fd = os.open(pf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, passphrase)
        os.close(fd)
        for attempt in range(5):  # LAB-NOTES: the PBKDF benchmark sometimes fails on a busy machine
            r = subprocess.run(["qemu-img", "create", "-q", "--object", f"secret,id=s0,file={pf}", "-f", "luks",
                                "-o", "key-secret=s0,iter-time=10", str(path), "16M"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                return
            time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"qemu-img create luks failed: {r.stderr}")

    def file_disk(self, path: str, *, dev: str = "vdb", fmt: str = "qcow2", extra: str = "",
                  cache: str = "none") -> str:
        return (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}' cache='{cache}'/>"
                f"<source file='{path}'/><target dev='{dev}' bus='virtio'/>{extra}</disk>")

    def pool(self, host: str, name: str, path: Path | str) -> libvirt.virStoragePool:
        p = self.conn(host).storagePoolDefineXML(
            f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>", 0)
        p.create(0)
        return p

    def network(self, host: str, name: str, start: bool) -> None:
        # A bridge-mode network: defining and starting it changes nothing on the host.
        n = self.conn(host).networkDefineXML(
            f"<network><name>{name}</name><forward mode='bridge'/><bridge name='mx{name[-8:]}'/></network>")
        if start:
            n.create()


# ---------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Scenario:
    id: str
    area: str
    build: Callable[[World], Setup]
    offline: bool = False
    copy_storage: bool = False
    unsafe: bool = False
    start_on_dst: bool = False  # offline: the truth includes starting the guest on the destination

    @property
    def policy(self) -> MigrationPolicy:
        return MigrationPolicy(live=not self.offline, copy_storage=self.copy_storage, unsafe=self.unsafe)

    @property
    def check_flags(self) -> list[str]:
        return ((["--offline"] if self.offline else []) + (["--copy-storage"] if self.copy_storage else [])
                + (["--unsafe"] if self.unsafe else []))


def _cpu_guest(cpu: str | Callable[[str], str] | None, start: bool, running: bool = False
               ) -> Callable[[World], Setup]:
    """``cpu``: a <cpu> element, None for the lab's probed one, or a function of the probed one."""
    def build(w: World) -> Setup:
        xml = w.cpu if cpu is None else cpu(w.cpu) if callable(cpu) else cpu
        w.define(w.xml(cpu=xml, tpm=None), start=start, running=running)
        return Setup(w.name)
    return build


def _like_lab(mode: str) -> Callable[[str], str]:
    """<cpu mode=MODE> disabling what the lab's probe had to disable (read from its choice, never assumed:
    under nested KVM e.g. arch-capabilities)."""
    def cpu(probed: str) -> str:
        disabled = re.findall(r"<feature policy=['\"]disable['\"] name=['\"]([\w.-]+)['\"]", probed)
        return f"<cpu mode='{mode}'>" + "".join(f"<feature policy='disable' name='{n}'/>" for n in disabled) + "</cpu>"
    return cpu


NO_CPU = ""  # no <cpu> element at all
PT = _like_lab("host-passthrough")
MAXIMUM = _like_lab("maximum")


def _custom(model: str, check: str | None = None) -> str:
    return f"<cpu mode='custom'{f' check={chr(39)}{check}{chr(39)}' if check else ''}><model>{model}</model></cpu>"


CPU = [
    Scenario("cpu-none-offline", "cpu", _cpu_guest(NO_CPU, False), offline=True, start_on_dst=True),
    Scenario("cpu-none-live", "cpu", _cpu_guest(NO_CPU, True, running=True)),
    Scenario("cpu-lab-host-model-offline", "cpu", _cpu_guest(None, False), offline=True, start_on_dst=True),
    Scenario("cpu-lab-host-model-live", "cpu", _cpu_guest(None, True)),
    Scenario("cpu-host-passthrough-offline", "cpu", _cpu_guest(PT, False), offline=True, start_on_dst=True),
    Scenario("cpu-host-passthrough-live", "cpu", _cpu_guest(PT, True)),
    Scenario("cpu-maximum-live", "cpu", _cpu_guest(MAXIMUM, True)),
    Scenario("cpu-qemu64-check-none-offline", "cpu", _cpu_guest(_custom("qemu64", "none"), False), offline=True,
             start_on_dst=True),
    Scenario("cpu-qemu64-check-none-live", "cpu", _cpu_guest(_custom("qemu64", "none"), True)),
    Scenario("cpu-qemu64-check-partial-offline", "cpu", _cpu_guest(_custom("qemu64", "partial"), False),
             offline=True, start_on_dst=True),
    Scenario("cpu-qemu64-check-full-offline", "cpu", _cpu_guest(_custom("qemu64", "full"), False), offline=True,
             start_on_dst=True),
    Scenario("cpu-kvm64-default-check-offline", "cpu", _cpu_guest(_custom("kvm64"), False), offline=True,
             start_on_dst=True),
    Scenario("cpu-kvm64-live", "cpu", _cpu_guest(_custom("kvm64"), True)),
    Scenario("cpu-epyc-check-partial-offline", "cpu", _cpu_guest(_custom("EPYC", "partial"), False),
             offline=True, start_on_dst=True),
]


# -- domain state -------------------------------------------------------------------------------

def _running(w: World) -> Setup:
    w.vtpm_guest(running=True)
    return Setup(w.name)


# NOTE: the other state scenarios have no vTPM: the state is what they test, and a vTPM costs a swtpm
# set-up and a second swtpm per migration (the secret scenarios cover it).
def _paused(w: World) -> Setup:
    w.define(w.xml(tpm=None), running=True)
    w.conn("src").lookupByName(w.name).suspend()
    return Setup(w.name)


def _shutoff(w: World) -> Setup:
    w.vtpm_guest(start=False)
    return Setup(w.name)


def _plain_running(w: World) -> Setup:
    w.define(w.xml(tpm=None), running=True)
    return Setup(w.name)


def _transient(w: World) -> Setup:
    w.conn("src").createXML(w.xml(tpm=None), libvirt.VIR_DOMAIN_START_PAUSED)
    return Setup(w.name)


def _job_in_progress(w: World) -> Setup:
    """An outgoing migration to dst2, throttled to 1 MiB/s, runs while the verdict and truth are taken."""
    sid, value = w.secret("src")
    w.define(w.xml(tpm=sid, memory=1024), running=True)
    w.secret("dst2", uuid=sid, value=value)
    lab = w.lab

    class Running:
        def __enter__(self) -> None:
            self.errors: list[Exception] = []
            self.th = threading.Thread(target=self.migrate)
            self.th.start()
            dom = lab.conn("src").lookupByName(w.name)
            deadline = time.monotonic() + 60
            while dom.jobStats(0).get("type", 0) == libvirt.VIR_DOMAIN_JOB_NONE:
                assert time.monotonic() < deadline and self.th.is_alive(), self.errors
                time.sleep(0.05)

        def migrate(self) -> None:
            c = libvirt.open(lab.uri("src"))
            try:
                c.lookupByName(w.name).migrateToURI3(lab.uri("dst2"), {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 1},
                                                      libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
            except libvirt.libvirtError as e:
                self.errors.append(e)
            finally:
                c.close()

        def __exit__(self, *exc: object) -> None:
            with contextlib.suppress(libvirt.libvirtError):
                lab.conn("src").lookupByName(w.name).abortJob()
            self.th.join(timeout=120)

    return Setup(w.name, during=Running)


DOMAIN = [
    Scenario("state-running-live", "domain", _running),
    Scenario("state-paused-live", "domain", _paused),
    Scenario("state-shutoff-offline", "domain", _shutoff, offline=True),
    Scenario("state-shutoff-live", "domain", _shutoff),
    Scenario("state-running-offline", "domain", _plain_running, offline=True),
    Scenario("state-transient-live", "domain", _transient),
    # the live definition is copied: can it start?
    Scenario("state-transient-offline", "domain", _transient, offline=True, start_on_dst=True),
    Scenario("state-job-in-progress-live", "domain", _job_in_progress),
]


# -- secrets ------------------------------------------------------------------------------------

def _secret_scenario(*, src_private: bool = False, dst: str | None = None, same_value: bool = True,
                     usage_type: str = "vtpm", other_name: bool = False, give_file: bool = False,
                     reset: bool = False, gone_from_source: bool = False,
                     running: bool = False) -> Callable[[World], Setup]:
    """A vTPM guest; ``dst``: None (no copy), "readable", "private" or "ephemeral"."""
    def build(w: World) -> Setup:
        sid, value = w.vtpm_guest(private=src_private, running=running)
        setup = Setup(w.name)
        if dst is not None:
            dval = value if same_value else os.urandom(32)
            kw: dict[str, Any] = {"usage_type": usage_type}
            if usage_type == "volume":
                kw["usage_id"] = f"/nonexistent/{w.name}.img"
            elif other_name:
                kw["usage_id"] = f"{w.name}-other"
            w.secret("dst", uuid=sid, value=dval, private=dst == "private", ephemeral=dst == "ephemeral", **kw)
        if give_file:
            f = w.tmp / "vtpm.key"
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, value)
            os.close(fd)
            setup.args += ["--secret-file", f"{sid}={f}"]
            setup.values[sid] = value
        if reset:
            setup.args.append("--reset-secret-values")
            setup.reset[sid] = value
        if gone_from_source:
            w.conn("src").secretLookupByUUIDString(sid).undefine()
        return setup
    return build


SECRETS = [
    Scenario("secret-missing-readable-source", "secrets", _secret_scenario(running=True)),
    Scenario("secret-missing-private-source", "secrets", _secret_scenario(src_private=True)),
    Scenario("secret-missing-private-source-file", "secrets", _secret_scenario(src_private=True, give_file=True)),
    Scenario("secret-dst-readable-same", "secrets", _secret_scenario(dst="readable")),
    Scenario("secret-dst-readable-differs", "secrets", _secret_scenario(dst="readable", same_value=False)),
    Scenario("secret-dst-private-same", "secrets", _secret_scenario(dst="private")),
    Scenario("secret-dst-private-differs-reset", "secrets",
             _secret_scenario(dst="private", same_value=False, reset=True)),
    Scenario("secret-dst-ephemeral-same", "secrets", _secret_scenario(dst="ephemeral")),
    Scenario("secret-dst-ephemeral-differs", "secrets", _secret_scenario(dst="ephemeral", same_value=False)),
    Scenario("secret-dst-usage-name-differs", "secrets", _secret_scenario(dst="readable", other_name=True)),
    Scenario("secret-dst-usage-type-differs", "secrets", _secret_scenario(dst="readable", usage_type="volume")),
    Scenario("secret-gone-from-source-missing-on-dst", "secrets", _secret_scenario(gone_from_source=True)),
    Scenario("secret-gone-from-source-dst-has-it", "secrets",
             _secret_scenario(dst="readable", gone_from_source=True)),
    Scenario("secret-gone-from-source-dst-differs-file", "secrets",
             _secret_scenario(dst="readable", same_value=False, gone_from_source=True, give_file=True)),
]


# -- storage ------------------------------------------------------------------------------------

def _local_disk(*, dst_image: bool = False, dst_pool: bool = False, extra: str = "",
                readonly: bool = False, start: bool = True, fmt: str = "qcow2",
                running: bool = False) -> Callable[[World], Setup]:
    """A disk image in the source's private /var/lib/libvirt/images (local storage)."""
    def build(w: World) -> Setup:
        img = f"{w.name}.{fmt}"
        w.image(w.images("src") / img, fmt)
        setup = Setup(w.name)
        for h in ("src", "dst"):
            setup.cleanup.append(functools.partial(Path.unlink, w.images(h) / img, missing_ok=True))
        if dst_image:
            w.image(w.images("dst") / img, fmt)
        if dst_pool:
            pname = f"mxp-{w.name[-6:]}"
            w.pool("dst", pname, "/var/lib/libvirt/images")
            setup.cleanup.append(lambda: w.lab.remove_pool(pname))
        ro = "<readonly/>" if readonly else ""
        w.define(w.xml(tpm=None, devices=w.file_disk(f"/var/lib/libvirt/images/{img}", fmt=fmt, extra=ro + extra)),
                 start=start, running=running)
        return setup
    return build


def _shared_disk(*, readonly: bool = False) -> Callable[[World], Setup]:
    def build(w: World) -> Setup:
        img = w.shared() / f"{w.name}.qcow2"
        w.image(img)
        setup = Setup(w.name, cleanup=[lambda: img.unlink(missing_ok=True)])
        w.define(w.xml(tpm=None, devices=w.file_disk(str(img), extra="<readonly/>" if readonly else "")))
        return setup
    return build


def _empty_cdrom(w: World) -> Setup:
    w.define(w.xml(tpm=None, devices="<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
                                     "<target dev='sda' bus='sata'/><readonly/></disk>"))
    return Setup(w.name)


def _luks(by: str) -> Callable[[World], Setup]:
    """A LUKS image on storage every host sees and its volume secret (by UUID or usage); no vTPM (the
    secret scenarios cover it)."""
    def build(w: World) -> Setup:
        img = w.shared() / f"{w.name}.luks"
        passphrase = os.urandom(16).hex().encode()
        w.luks(img, passphrase)
        vsid, _ = w.secret("src", usage_type="volume", usage_id=str(img), value=passphrase)
        ref = f"usage='{img}'" if by == "usage" else f"uuid='{vsid}'"
        disk = (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>"
                f"<source file='{img}'><encryption format='luks'><secret type='passphrase' {ref}/></encryption>"
                f"</source><target dev='vdb' bus='virtio'/></disk>")
        w.define(w.xml(tpm=None, devices=disk))
        return Setup(w.name, cleanup=[lambda: img.unlink(missing_ok=True)])
    return build


def _pool_volume(*, on_dst: bool, start: bool = True) -> Callable[[World], Setup]:
    """A dir pool at a path every host sees, a volume in it, a guest using it by pool/volume."""
    def build(w: World) -> Setup:
        pname = f"mxp-{w.name[-6:]}"
        path = w.lab.dir / "pools" / pname
        path.mkdir(parents=True, exist_ok=True)
        setup = Setup(w.name, cleanup=[lambda: w.lab.remove_pool(pname),
                                       lambda: shutil.rmtree(path, ignore_errors=True)])
        p = w.pool("src", pname, path)
        p.createXML("<volume><name>d0.qcow2</name><capacity unit='MiB'>16</capacity>"
                    "<target><format type='qcow2'/></target></volume>", 0)
        if on_dst:
            w.pool("dst", pname, path)
        disk = (f"<disk type='volume' device='disk'><driver name='qemu' type='qcow2' cache='none'/>"
                f"<source pool='{pname}' volume='d0.qcow2'/><target dev='vdb' bus='virtio'/></disk>")
        w.define(w.xml(tpm=None, devices=disk), start=start)
        return setup
    return build


STORAGE = [
    Scenario("storage-local-disk-no-flags", "storage", _local_disk(running=True)),
    Scenario("storage-local-disk-copy-no-target", "storage", _local_disk(), copy_storage=True),
    Scenario("storage-local-disk-copy-dst-image", "storage", _local_disk(dst_image=True), copy_storage=True),
    Scenario("storage-local-disk-copy-dst-pool", "storage", _local_disk(dst_pool=True), copy_storage=True),
    Scenario("storage-local-disk-offline", "storage", _local_disk(start=False), offline=True),
    Scenario("storage-local-shareable-no-flags", "storage",
             _local_disk(dst_image=True, extra="<shareable/>", fmt="raw")),
    Scenario("storage-local-readonly-missing-on-dst", "storage", _local_disk(readonly=True)),
    Scenario("storage-shared-path-no-flags", "storage", _shared_disk()),
    Scenario("storage-shared-path-unsafe", "storage", _shared_disk(), unsafe=True),
    Scenario("storage-shared-readonly-no-flags", "storage", _shared_disk(readonly=True)),
    Scenario("storage-empty-cdrom", "storage", _empty_cdrom),
    Scenario("storage-luks-by-uuid-unsafe", "storage", _luks("uuid"), unsafe=True),
    Scenario("storage-luks-by-usage-unsafe", "storage", _luks("usage"), unsafe=True),
    Scenario("storage-pool-volume-no-flags", "storage", _pool_volume(on_dst=True)),
    Scenario("storage-pool-volume-unsafe", "storage", _pool_volume(on_dst=True), unsafe=True),
    Scenario("storage-pool-missing-on-dst-unsafe", "storage", _pool_volume(on_dst=False), unsafe=True),
    Scenario("storage-pool-missing-on-dst-offline", "storage", _pool_volume(on_dst=False, start=False),
             offline=True),
]


# -- networks, name/UUID clashes, TPM ------------------------------------------------------------

def _network(dst: str | None) -> Callable[[World], Setup]:
    """Offline only (see NOT_IN_MATRIX): a shut-off guest on a bridge-mode network."""
    def build(w: World) -> Setup:
        net = f"mxn-{w.name[-6:]}"
        w.network("src", net, start=True)
        if dst is not None:
            w.network("dst", net, start=dst == "active")
        w.define(w.xml(tpm=None, devices=f"<interface type='network'><source network='{net}'/>"
                                          "<model type='virtio'/></interface>"), start=False)
        return Setup(w.name, cleanup=[lambda: w.lab.remove_network(net)])
    return build


def _clash(kind: str) -> Callable[[World], Setup]:
    def build(w: World) -> Setup:
        sid, _ = w.secret("src")
        dom = w.define(w.xml(tpm=sid))
        if kind == "name":
            w.define(w.xml(tpm=None), host="dst", start=False)
        elif kind == "uuid":
            w.define(w.xml(f"{w.name}-other", tpm=None, uuid=dom.UUIDString()), host="dst", start=False)
        else:  # the same definition (name and UUID) as written, inactive on the destination. Not the
            # source's expanded XML: libvirt 11.3 adds an itco watchdog to q35, which 9.0 cannot define.
            w.define(w.xml(tpm=sid, uuid=dom.UUIDString()), host="dst", start=False)
        return Setup(w.name)
    return build


def _tpm(model: str, version: str, encrypted: bool = True) -> Callable[[World], Setup]:
    def build(w: World) -> Setup:
        sid = w.secret("src")[0] if encrypted else ""
        w.define(w.xml(tpm=sid, tpm_model=model, tpm_version=version))
        return Setup(w.name)
    return build


OTHER = [
    Scenario("network-missing-on-dst-offline", "network", _network(None), offline=True),
    Scenario("network-inactive-on-dst-offline", "network", _network("inactive"), offline=True),
    Scenario("network-active-on-dst-offline", "network", _network("active"), offline=True),
    Scenario("clash-same-name-live", "clash", _clash("name")),
    Scenario("clash-same-uuid-live", "clash", _clash("uuid")),
    Scenario("clash-same-definition-live", "clash", _clash("same")),
    Scenario("tpm-tis-2.0-live", "tpm", _tpm("tpm-tis", "2.0")),
    Scenario("tpm-tis-1.2-live", "tpm", _tpm("tpm-tis", "1.2")),
    Scenario("tpm-crb-unencrypted-live", "tpm", _tpm("tpm-crb", "2.0", encrypted=False)),
]

def q35_machines(w: World, host: str) -> list[str]:
    """The versioned q35 machine types ``host``'s QEMU knows, oldest first (pc-q35-7.2, ..., pc-q35-10.0)."""
    caps = ET.fromstring(w.conn(host).getCapabilities())
    names = {m.text for m in caps.iter("machine") if m.text and re.fullmatch(r"pc-q35-\d+\.\d+", m.text)}
    return sorted(names, key=lambda n: tuple(int(x) for x in n[len("pc-q35-"):].split(".")))


def _upgrade_guest(pick: str, cpu: str | None = None, *, start: bool = True) -> Callable[[World], Setup]:
    """A rolling upgrade's guest: its machine type the newest q35 the source's QEMU knows (a guest started on
    the upgraded host going back) or the newest both hosts know (pinned for the upgrade); ``cpu`` as in
    ``_cpu_guest`` (None: the lab's probed one)."""
    def build(w: World) -> Setup:
        machine = q35_machines(w, "src")[-1] if pick == "newest-on-source" else w.pinned_machine()
        w.define(w.xml(tpm=w.secret("src")[0], machine=machine, cpu=cpu), start=start)
        return Setup(w.name)
    return build


UPGRADE = [
    Scenario("upgrade-machine-newest-on-source-live", "upgrade", _upgrade_guest("newest-on-source")),
    Scenario("upgrade-machine-newest-on-source-offline", "upgrade", _upgrade_guest("newest-on-source", start=False),
             offline=True, start_on_dst=True),
    # the lab CPU (host-model) as the newer QEMU expands it: features the older libvirt may not know
    Scenario("upgrade-machine-pinned-lab-cpu-live", "upgrade", _upgrade_guest("pinned")),
    Scenario("upgrade-machine-pinned-kvm64-live", "upgrade", _upgrade_guest("pinned", _custom("kvm64"))),
]

SCENARIOS = CPU + DOMAIN + SECRETS + STORAGE + UPGRADE + OTHER


# ---------------------------------------------------------------- verdict and truth

def verdict(lab: Lab, sc: Scenario, setup: Setup, capsys: pytest.CaptureFixture) -> tuple[str, dict]:
    """`migcoord check NAME --json ...` in-process (the CLI's own parser and run): go / block."""
    ssh = lab.env["ssh"]
    argv = ["check", setup.name, "--from", lab.uri("src"), "--to", lab.uri("dst"), "--json",
            "--ssh-key", ssh["key"], "--ssh-known-hosts", ssh["known_hosts"], *sc.check_flags, *setup.args]
    capsys.readouterr()
    try:
        rc = command.run(invocation.build(build_parser().parse_args(argv), build_parser, argv, {}))
    except MigcoordError as e:
        rc = e.exit_code
    out = capsys.readouterr().out
    assert rc in (0, 1, 6), (rc, out)
    report = json.loads(out)
    # NOTE: 6 (a decisive unknown, issue 19.4) is "go once the unknown is accepted" (--accept-unknown): the
    # matrix proves the verdict of what the checks know — block ⇒ libvirt refuses, else it migrates — and a
    # scenario whose truth depends on the unknown is listed in NOT_IN_MATRIX. RESULTS records it ("unknown").
    return ("block" if rc == 1 else "go"), report


def _provision(lab: Lab, setup: Setup) -> None:
    """What migcoord does before migrating: each secret the destination lacks, defined there with the
    source's definition and the value byte-exact, when a value is known (readable source or given)."""
    src, dst = lab.conn("src"), lab.conn("dst")
    dom = src.lookupByName(setup.name)
    xmls = [dom.XMLDesc(0)] + ([dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)] if dom.isPersistent() else [])
    for ref in unique_secret_refs(union_refs(*xmls)):
        try:
            if ref.uuid:
                s = src.secretLookupByUUIDString(ref.uuid)
            else:
                s = src.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_VOLUME, ref.usage_id)
        except libvirt.libvirtError:
            continue  # gone from the source: migcoord cannot know its definition
        uuid = s.UUIDString()
        if uuid in setup.reset:
            dst.secretLookupByUUIDString(uuid).setValue(setup.reset[uuid], 0)
            continue
        if uuid in {x.lower() for x in dst.listSecrets()}:
            continue
        xml = s.XMLDesc(0)
        value = setup.values.get(uuid)
        if value is None and "private='no'" in xml:
            value = s.value(0)
        if value is not None:
            dst.secretDefineXML(xml, 0).setValue(value, 0)


def truth(lab: Lab, sc: Scenario, setup: Setup) -> tuple[str, str]:
    """The migration done for real: ("go" | "block", what happened)."""
    _provision(lab, setup)
    dom = lab.conn("src").lookupByName(setup.name)
    try:
        dom.migrateToURI3(lab.uri("dst"), {}, libvirt_flags(sc.policy))
    except libvirt.libvirtError as e:
        return "block", f"migrate: {e.get_error_code()}: {e.get_error_message()}"
    if sc.start_on_dst:
        try:
            lab.conn("dst").lookupByName(setup.name).create()
        except libvirt.libvirtError as e:
            return "block", f"migrated, start on dst: {e.get_error_code()}: {e.get_error_message()}"
        return "go", "migrated and started on the destination"
    return "go", "migrated"


RESULTS: dict[str, dict] = {}
_PENDING: list[libvirt.virDomain] = []  # scenario guests not yet destroyed
BATCH = 16


def _secrets(lab: Lab) -> dict[str, set[str]]:
    """Every host's secret UUIDs."""
    return {h: {x.UUIDString() for x in lab.conn(h).listAllSecrets(0)} for h in lab.env["hosts"]}


def _destroy_pending() -> None:
    """Destroy and undefine the pending guests, several at once.

    NOTE: libvirt takes 1-2 s to stop a guest (qemuProcessStop, even after a SIGKILL), and most of it
    overlaps: 6 at once took 3.5 s here instead of 9. Guests are small and idle, so a batch waits."""
    def destroy(d: libvirt.virDomain) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            if d.isActive():
                d.destroy()
            if d.isPersistent():
                d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_TPM | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    threads = [threading.Thread(target=destroy, args=(d,)) for d in _PENDING]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    _PENDING.clear()


def _clean_up_after(lab: Lab, name: str, before: dict[str, set[str]]) -> None:
    """Remove what one scenario added: its secrets at once; its guests (all named NAME...) with the next
    batch (every scenario has unique names, so they do not meet). The module ends with a full wipe."""
    for h, secrets in before.items():
        c = lab.conn(h)
        for x in c.listAllSecrets(0):
            if x.UUIDString() not in secrets:
                x.undefine()
        _PENDING.extend(d for d in c.listAllDomains(0) if d.name().startswith(name))
    if len(_PENDING) >= BATCH:
        _destroy_pending()


@pytest.fixture(scope="module", autouse=True)
def _record(lab: Lab):
    yield
    _destroy_pending()
    lab.wipe()
    out = os.environ.get("MIGCOORD_MATRIX_OUT")
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=2, sort_keys=True))


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_verdict_is_the_truth(sc: Scenario, lab: Lab, name: str, tmp_path: Path, capsys) -> None:
    # pytest runs two scenarios of the same id (as ID0, ID1); their results would overwrite each other
    assert sc.id not in RESULTS, f"two scenarios are named {sc.id}"
    if sc.id in NEEDS_KVM and lab.env["accel"] != "kvm":
        pytest.skip(f"lab guests run under {lab.env['accel']}, not KVM: {NEEDS_KVM[sc.id]}")
    w = World(lab, name, tmp_path)
    before = _secrets(lab)
    t0 = time.monotonic()
    setup: Setup | None = None
    try:
        setup = sc.build(w)
        ctx = setup.during() if setup.during else None
        if ctx is not None:
            ctx.__enter__()
        try:
            t1 = time.monotonic()
            v, report = verdict(lab, sc, setup, capsys)
            flaky: list[tuple[str, str, str]] = []
            if v == "block":
                # NOTE: a block is taken twice (read-only, before the truth changes anything). About once in ten
                # pair runs SWTPM-CAPABILITIES blocked a scenario that agreed on every re-run: SshRunner.run
                # stopped reading when the exit status came before swtpm's output (fixed, session 5; unit test
                # test_ssh_output_after_exit_status). A block that does not hold on the second look is kept in
                # the results as "flaky" (scripts/verdict-matrix prints it) instead of failing CI; a consistent
                # false block and every missed failure still fail.
                v2, report2 = verdict(lab, sc, setup, capsys)
                if v2 != v:
                    flaky = [(f["check_id"], f["status"], f["message"]) for f in report["findings"]
                             if f["check_id"] in report["blocking"]]
                    v, report = v2, report2
            t2 = time.monotonic()
            t, how = truth(lab, sc, setup)
            t3 = time.monotonic()
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
    finally:
        _clean_up_after(lab, name, before)
        for fn in setup.cleanup if setup else ():
            fn()
    assert setup is not None
    blocking = report["blocking"]
    unknown = sorted({f["check_id"] for f in report["findings"] if f["status"] == "unknown"})
    RESULTS[sc.id] = {"area": sc.area, "verdict": v, "truth": t, "blocking": blocking, "unknown": unknown,
                      "what_happened": how, "flags": sc.check_flags + setup.args[:1],
                      "seconds": round(time.monotonic() - t0, 1), "setup_s": round(t1 - t0, 1),
                      "verdict_s": round(t2 - t1, 1), "truth_s": round(t3 - t2, 1), "flaky": flaky}
    why = [(f["check_id"], f["status"], f["message"]) for f in report["findings"] if f["check_id"] in blocking]
    assert v == t, f"{sc.id}: verdict {v} (blocking {blocking}: {why}) but libvirt: {how}"
