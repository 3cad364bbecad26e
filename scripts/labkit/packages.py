"""The Debian packages the lab and the project need (`scripts/lab deps`, and `up` before starting)."""
from __future__ import annotations

import os
import shutil
import subprocess

from labkit.console import log

APT_PACKAGES = [
    "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86",
    "qemu-utils", "swtpm", "swtpm-tools", "libvirt-dev", "pkg-config", "openssh-server",
    "openssh-client", "iproute2",
]
NEEDED_BINARIES = ["libvirtd", "virsh", "qemu-system-x86_64", "qemu-img", "swtpm", "swtpm_setup",
                   "sshd", "ssh-keygen", "pkg-config"]


def ensure_packages() -> None:
    missing = [b for b in NEEDED_BINARIES if not shutil.which(b) and not os.path.exists(f"/usr/sbin/{b}")]
    if shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "libvirt"]).returncode != 0:
        missing.append("libvirt-dev")  # headers for building libvirt-python
    if not missing:
        return
    log(f"installing Debian packages (missing: {', '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
                   check=True, env=env, stdout=subprocess.DEVNULL)
