"""After libvirt reports success: is the VM really where it should be, and is nothing lost?"""
from __future__ import annotations

from coordinator.core.errors import VerificationFailed
from coordinator.core.migration_rules import TPM_STATE_ROOT
from coordinator.core.model import SecretKind, SecretPlan
from coordinator.core.params import MigrationPolicy
from coordinator.ssh.runner import SshConfig, runner_for
from coordinator.virt.host import Host



def where_is(src: Host, dst: Host, uuid: str) -> str:
    """'source' if active there, 'destination' if active there (and not on source), else 'nowhere'."""
    s = src.find_guest(uuid)
    if s is not None and s.is_active():
        return "source"
    d = dst.find_guest(uuid)
    if d is not None and d.is_active():
        return "destination"
    return "nowhere"


def safe_where(src: Host, dst: Host, uuid: str) -> str:
    """``where_is``, or "unknown" when a host cannot be asked (after a failure)."""
    try:
        return where_is(src, dst, uuid)
    except Exception:
        return "unknown"


def verify(domain: str, uuid: str, src: Host, dst: Host, policy: MigrationPolicy,
           plans: list[SecretPlan], ssh: SshConfig | None = None) -> None:
    """After success: running on the destination, persistent if asked, gone from the source if asked,
    every secret still on the source (we never delete those by ourselves), and — over SSH when
    configured — the vTPM state directory present on the destination."""
    problems = []
    d = dst.find_guest(uuid)
    if d is None or (policy.live and not d.is_active()):
        problems.append(f"not active on {dst.uri}")
    elif policy.persist and not d.is_persistent():
        problems.append(f"not persistent on {dst.uri}")
    s = src.find_guest(uuid)
    if s is not None:
        active = s.is_active()
        if policy.undefine_source or active:
            problems.append(f"still {'active' if active else 'defined'} on {src.uri}")
    for p in plans:
        if p.uuid and src.secret_info(p.uuid) is None:
            problems.append(f"secret {p.uuid} no longer on {src.uri}")
    if ssh is not None and policy.live and any(p.ref.kind is SecretKind.VTPM for p in plans):
        runner = runner_for(dst.uri, ssh)
        if runner is not None:
            try:
                if not runner.run("test -d {}", f"{TPM_STATE_ROOT}/{uuid}").ok:
                    problems.append(f"no vTPM state for {uuid} under {TPM_STATE_ROOT} on {dst.uri}")
            finally:
                runner.close()
    if problems:
        raise VerificationFailed(f"migration of {domain} reported success but verification failed: "
                            + "; ".join(problems), hint="inspect both hosts with virsh")
