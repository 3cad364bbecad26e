"""Which Debian release each lab host runs: this machine's own, or a root of another release that the
lab builds with debootstrap from Debian's packages and caches (``MIGCOORD_LAB_STACK``).

    MIGCOORD_LAB_STACK=trixie                   every host on Debian 13
    MIGCOORD_LAB_STACK=src=bookworm,dst=trixie  per host (hosts not named: the machine's own)
    unset (or the machine's own release)        every host on this machine's own OS

Names: ``bookworm`` (12), ``trixie`` (13), ``testing`` (also ``forky``). A host on the machine's own
release runs on the machine itself; any other runs chrooted into its root (hosts.start_host). Roots live
under ``MIGCOORD_ROOTS_DIR`` (default /var/cache/migcoord/roots), one per release, built once and reused:
a root is complete only once its stamp (the package list it was built with) is written, so a crashed
build is started over, and a changed package list installs what is missing.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from labkit.console import die, log

ALIASES = {"bookworm": "bookworm", "12": "bookworm", "trixie": "trixie", "13": "trixie",
           "testing": "testing", "forky": "testing", "sid": "testing"}
RELEASES = ("bookworm", "trixie", "testing")
ROOTS = Path(os.environ.get("MIGCOORD_ROOTS_DIR", "/var/cache/migcoord/roots"))
STAMP = ".migcoord-root"  # the package list, written last
BOOTSTRAPPED = ".migcoord-bootstrapped"  # debootstrap finished

BASE_PACKAGES = [
    "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86",
    "qemu-utils", "swtpm", "swtpm-tools", "libvirt-dev", "pkg-config", "openssh-server",
    "openssh-client", "iproute2",
]
# NOTE: from Debian 13 on, libvirt's secret, network, storage and nodedev drivers are packages of their
# own; without -secret virSecretDefineXML says "this function is not supported by the connection driver".
SPLIT_DRIVERS = ["libvirt-daemon-driver-secret", "libvirt-daemon-driver-network",
                 "libvirt-daemon-driver-storage", "libvirt-daemon-driver-nodedev"]
# In a root, also what the project's own unit suite needs under that release's Python.
ROOT_EXTRAS = ["ca-certificates", "python3", "python3-venv", "python3-dev", "gcc", "procps", "kmod"]


def canonical(name: str) -> str:
    rel = ALIASES.get(name.strip().lower())
    if rel is None:
        die(f"unknown lab stack {name!r}: use one of {', '.join(RELEASES)} (or forky)")
    return rel


def own_release() -> str:
    """This machine's Debian release, from /etc/os-release (testing and sid name the next codename)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            k, _, v = line.partition("=")
            fields[k] = v.strip().strip('"')
    except OSError:
        pass
    code = fields.get("VERSION_CODENAME", "")
    if fields.get("ID") != "debian" or not code:
        die("the lab runs on Debian (bookworm, trixie or testing); /etc/os-release says otherwise")
    if code in ("bookworm", "trixie"):
        return code
    return "testing"  # a release not yet stable: testing/sid report the next codename (forky, ...)


def host_stacks(spec: str | None, names: list[str]) -> dict[str, str]:
    """Each host's release from a MIGCOORD_LAB_STACK value (see the module docstring)."""
    own = own_release()
    spec = (spec or "").strip()
    if not spec:
        return {n: own for n in names}
    if "=" not in spec:
        rel = canonical(spec)
        return {n: rel for n in names}
    out = {n: own for n in names}
    for part in spec.split(","):
        host, sep, rel = part.partition("=")
        if not sep or not host.strip():
            die(f"bad MIGCOORD_LAB_STACK part {part!r}: write HOST=RELEASE,... or one RELEASE")
        out[host.strip()] = canonical(rel)
    return out


def packages_for(release: str, *, in_root: bool) -> list[str]:
    pkgs = list(BASE_PACKAGES)
    if release != "bookworm":
        pkgs += SPLIT_DRIVERS
    return pkgs + (ROOT_EXTRAS if in_root else [])


def mirror() -> str:
    """The Debian mirror this machine's apt sources already name (no host is written into the project)."""
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") and p.is_file():
            texts.append(p.read_text(errors="replace"))
    for line in "\n".join(texts).splitlines():
        words = line.split()
        for w in words:
            if w.startswith(("http://", "https://")) and w.rstrip("/").endswith("/debian"):
                if line.lstrip().startswith("#"):
                    break
                return w
    die("no Debian mirror in /etc/apt/sources.list(.d): the lab builds release roots from it")


def root_dir(release: str) -> Path | None:
    """Where a host of ``release`` runs: None for the machine's own release, else its root."""
    return None if release == own_release() else ROOTS / release


def chroot_run(root: Path, *cmd: str, env: dict[str, str] | None = None) -> None:
    """Run ``cmd`` in ``root`` (chroot_command), quietly; its output is shown only when it fails."""
    r = subprocess.run(chroot_command(root, list(cmd)), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        die(f"in the {root.name} root, {' '.join(cmd[:3])} failed:\n{(r.stdout or '')[-2000:]}")


def system_mounts(root: Path | str) -> list[str]:
    """The mount commands that give a root this machine's /proc, /sys and /dev (run inside a private mount
    namespace: no mount outlives it). Shared by ``chroot_command`` and the lab hosts' start."""
    return [f"mount -t proc proc {root}/proc", f"mount --rbind /sys {root}/sys", f"mount --rbind /dev {root}/dev"]


def chroot_command(root: Path, cmd: list[str]) -> list[str]:
    """``cmd`` to run chrooted into ``root`` with this machine's /proc, /sys and /dev, in a private
    mount namespace of its own (no mount outlives it)."""
    script = " && ".join(system_mounts(root)) + f" && exec chroot {root} \"$@\""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *cmd]


def ensure_root(release: str) -> Path | None:
    """The root for ``release`` (built or completed first, under a lock), or None for the own release."""
    root = root_dir(release)
    if root is None:
        return None
    pkgs = packages_for(release, in_root=True)
    want = " ".join(pkgs) + "\n"
    ROOTS.mkdir(parents=True, exist_ok=True)
    with open(ROOTS / f"{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # side-by-side labs (test workers) build a root once
        stamp = root / STAMP
        if stamp.exists() and stamp.read_text() == want:
            return root
        if not (root / BOOTSTRAPPED).exists():
            build = ROOTS / f"{release}.build"
            shutil.rmtree(build, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
            log(f"building a Debian {release} root in {root} (debootstrap; a few minutes, once)")
            r = subprocess.run(["debootstrap", "--variant=minbase", "--include=ca-certificates", release,
                                str(build), mirror()], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                die(f"debootstrap {release} failed:\n{r.stdout[-2000:]}")
            (build / BOOTSTRAPPED).write_text("")
            build.rename(root)
        # NOTE: pip inside the root needs the machine's CA bundle and pip settings (LAB-NOTES).
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
        if Path("/etc/pip.conf").exists():
            shutil.copy("/etc/pip.conf", root / "etc/pip.conf")
        log(f"installing the lab's packages in the {release} root")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        # NOTE: the registry's mirror may be a snapshot: testing's Release file then carries a Valid-Until
        # that has passed ("Release file ... is expired"); the signatures are still checked.
        chroot_run(root, "apt-get", "-o", "Acquire::Check-Valid-Until=false", "update", "-qq", env=env)
        chroot_run(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs, env=env)
        chroot_run(root, "apt-get", "clean", env=env)
        tmp = root / (STAMP + ".tmp")
        tmp.write_text(want)
        tmp.rename(stamp)
        return root


def versions(root: Path | None) -> dict[str, str]:
    """The Debian package versions of the stack (libvirt, QEMU, swtpm, Python) on the machine or in a root."""
    pkgs = {"libvirt": "libvirt-daemon", "qemu": "qemu-system-x86", "swtpm": "swtpm", "python": "python3"}
    cmd = ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *pkgs.values()]
    if root is not None:
        cmd = ["chroot", str(root), *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True)
    got = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    out = {}
    for k, p in pkgs.items():
        v = got.get(p, "")
        out[k] = v.split(":", 1)[-1].split("-")[0].split("+")[0] if v else "not installed"
    return out
