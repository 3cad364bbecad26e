"""A real multi-host libvirt lab on one Linux machine (run as root).

Each lab "host" is one libvirtd in its own mount + UTS namespace, with private
/etc/libvirt, /var/lib/libvirt, /run/libvirt, ... bind-mounted over the real
ones, its own loopback address (127.0.0.11, .12, ...) on port 16509, its own
host_uuid, hostname and migration port range. All hosts share the network and
PID namespaces, so QEMU live migration between them is real.

    scripts/lab up [--hosts src,dst]     start (idempotent; adds missing hosts)
    scripts/lab down                     stop everything the lab started, by PID
    scripts/lab status [--json]
    scripts/lab env [--json]             each host's libvirt URI
    scripts/lab vm NAME --on HOST [--secret private|readable] [...]
    scripts/lab root RELEASE             build (once) a release's root, print its path
    scripts/lab chroot RELEASE CMD...    run CMD in that root

MIGCOORD_LAB_STACK chooses each host's Debian release (labkit/stacks.py): unset = this
machine's own; "trixie" = every host; "src=bookworm,dst=trixie" = per host.

Stdlib only: it runs before any venv exists. Why each setting is there is
documented in ../shared/LAB-NOTES.md; the NOTE comments repeat the non-obvious.
"""
from __future__ import annotations

import argparse

from labkit.commands import (cmd_chroot, cmd_cpu, cmd_down, cmd_env, cmd_kill, cmd_root, cmd_stacks, cmd_status,
                             cmd_up, cmd_vm)
from labkit.packages import ensure_packages


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scripts/lab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the lab hosts (idempotent)")
    up.add_argument("--hosts", default="src,dst", help="comma-separated host names (default src,dst)")
    up.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop everything the lab started").set_defaults(fn=cmd_down)
    k = sub.add_parser("kill", help="SIGKILL one host's libvirtd (fault injection)")
    k.add_argument("host")
    k.set_defaults(fn=cmd_kill)
    sub.add_parser("deps", help="install the Debian packages the lab and the project need"
                   ).set_defaults(fn=lambda _a: ensure_packages())
    rt = sub.add_parser("root", help="build (once) the root of a Debian release and print its path "
                        "(/ for this machine's own release)")
    rt.add_argument("release")
    rt.set_defaults(fn=cmd_root)
    ch = sub.add_parser("chroot", help="run a command inside a release's root (its Python, its libvirt)")
    ch.add_argument("release")
    ch.add_argument("command", nargs=argparse.REMAINDER)
    ch.set_defaults(fn=cmd_chroot)
    st = sub.add_parser("stacks", help="print the Debian releases the lab knows (this machine's own first)")
    st.add_argument("--own", action="store_true", help="only this machine's own release")
    st.add_argument("--others", action="store_true", help="only the releases other than this machine's")
    st.set_defaults(fn=cmd_stacks)
    cpu = sub.add_parser("cpu", help="probe which guest <cpu> starts here (prints JSON; changes nothing)")
    cpu.add_argument("--first", metavar="XML", help="a <cpu> element to try before the usual candidates")
    cpu.set_defaults(fn=cmd_cpu)
    for name, fn in (("status", cmd_status), ("env", cmd_env)):
        sp = sub.add_parser(name)
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(fn=fn)
    vm = sub.add_parser("vm", help="define and start a small diskless guest with an encrypted vTPM")
    vm.add_argument("name")
    vm.add_argument("--on", required=True, metavar="HOST")
    vm.add_argument("--secret", choices=["private", "readable"], default="readable")
    vm.add_argument("--memory", type=int, default=128, metavar="MIB")
    vm.add_argument("--cpu-model", help="a custom CPU model (e.g. qemu64) instead of host-model")
    vm.add_argument("--luks-disk", choices=["shared", "local"],
                    help="add a LUKS-encrypted disk: on storage all hosts see (migrate with --unsafe) "
                         "or under the host's own /var/lib/libvirt/images")
    vm.add_argument("--disk-secret-by", choices=["uuid", "usage"], default="uuid",
                    help="reference the disk's secret by UUID or by usage (the volume path)")
    vm.add_argument("--keyfile", help="also write the vTPM secret value to this file (mode 0600)")
    vm.add_argument("--no-start", action="store_true", help="define only")
    vm.add_argument("--dirty-memory", action="store_true",
                    help="boot a tiny program that first writes 64 MiB of non-zero pages, then keeps rewriting "
                         "512 KiB: a --bandwidth 1 migration stays in flight (KVM and TCG)")
    vm.set_defaults(fn=cmd_vm)
    args = p.parse_args(argv)
    args.fn(args)
