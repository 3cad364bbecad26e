"""The Debian packages the lab and the project need on this machine (`scripts/lab deps`, and `up`
before starting); the packages of a release root are stacks.py's."""
from __future__ import annotations

import os
import shutil
import subprocess

from labkit.console import log
from labkit.stacks import own_release, packages_for

NEEDED_BINARIES = ["libvirtd", "virsh", "qemu-system-x86_64", "qemu-img", "swtpm", "swtpm_setup",
                   "sshd", "ssh-keygen", "pkg-config"]
# Building a release root (MIGCOORD_LAB_STACK) needs debootstrap on this machine.
MACHINE_EXTRAS = ["debootstrap"]


def not_installed(pkgs: list[str]) -> list[str]:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *pkgs],
                       capture_output=True, text=True)
    ok = {line.split()[0] for line in r.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in pkgs if p not in ok]


def ensure_packages() -> None:
    want = packages_for(own_release(), in_root=False) + MACHINE_EXTRAS
    missing = not_installed(want)
    missing += [b for b in NEEDED_BINARIES if not shutil.which(b) and not os.path.exists(f"/usr/sbin/{b}")]
    if not missing:
        return
    log(f"installing Debian packages (missing: {', '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *want],
                   check=True, env=env, stdout=subprocess.DEVNULL)
