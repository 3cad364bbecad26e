"""Say why a late migration failure happened.

libvirt often reports only "operation failed: job 'migration out' unexpectedly failed"; the real
cause sits in the destination's swtpm or QEMU log for that domain (LAB-NOTES: a different secret
value shows up only as "Decrypting the permall blob with the migration key failed" in swtpm's log).
``explain`` (pure) combines those log lines with what the plan already knew (a secret we could not
verify) into a cause and a fix; ``gather`` reads the logs over the destination's command runner.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.core.model import SecretPlan, Verdict
from coordinator.ssh.runner import CommandRunner

# Where libvirt's QEMU driver (system daemon) logs a domain's swtpm and QEMU.
SWTPM_LOG = "/var/log/swtpm/libvirt/qemu/{name}-swtpm.log"
QEMU_LOG = "/var/log/libvirt/qemu/{name}.log"
TAIL_LINES = 40

# libvirt's messages that say nothing about the cause.
_GENERIC = re.compile(r"unexpectedly failed|operation failed: job|migration .* failed|"
                      r"process exited while connecting|Unable to read from monitor", re.I)
# Log lines worth showing (errors, not chatter). Values never appear in these logs: swtpm and QEMU
# get keys through file descriptors.
_EVIDENCE = re.compile(r"error|fail|denied|cannot|could not|unable|decrypt|invalid", re.I)
_SWTPM_KEY_FAILURE = re.compile(r"decrypt|migration key|key.*(wrong|invalid)|permall", re.I)


@dataclass(frozen=True)
class Diagnosis:
    cause: str            # what most probably happened ("" when nothing is known beyond libvirt's words)
    evidence: tuple[str, ...]  # log lines, "host:file: line"
    hint: str = ""

    @property
    def known(self) -> bool:
        return bool(self.cause)

    def as_dict(self) -> dict[str, object]:
        return {"cause": self.cause, "evidence": list(self.evidence), "hint": self.hint}


def is_generic(error: str) -> bool:
    """True when libvirt's message does not say why (the case worth a diagnosis)."""
    return bool(_GENERIC.search(error))


def evidence_lines(text: str, limit: int = 6) -> list[str]:
    """The last ``limit`` error-looking lines of a log tail, stripped of timestamps' noise."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and _EVIDENCE.search(ln)]
    return lines[-limit:]


def explain(error: str, swtpm_log: str, qemu_log: str, plans: Sequence[SecretPlan], where: str) -> Diagnosis:
    """Pure: the probable cause of a failed migration, from libvirt's error, the destination's swtpm
    and QEMU log tails (``where`` names the host for the evidence lines) and the secret plans."""
    swtpm = evidence_lines(swtpm_log)
    qemu = evidence_lines(qemu_log)
    evidence = tuple([f"{where}: swtpm: {ln}" for ln in swtpm] + [f"{where}: qemu: {ln}" for ln in qemu])
    unverified = [p for p in plans if p.verdict in (Verdict.UNVERIFIABLE_PRIVATE, Verdict.UNVERIFIABLE_NO_VALUE)
                  and p.ref.kind == "vtpm"]
    # NOTE: under TCG (and other timings) QEMU itself reports "TPM error 0x21 decryption error".
    key_failure = any(_SWTPM_KEY_FAILURE.search(ln) for ln in swtpm) or bool(_SWTPM_KEY_FAILURE.search(error))
    fix = ("give the value (--secret-file/--secret-dir/--secret-command/--secret-stdin) and pass "
           "--reset-secret-values, or undefine the destination copy so migcoord provisions it")
    if key_failure or (unverified and is_generic(error)):
        vtpm = unverified or [p for p in plans if p.ref.kind == "vtpm"]
        names = ", ".join(p.uuid or "?" for p in vtpm) or "(the vTPM secret)"
        why = "swtpm on the destination could not decrypt the TPM state" if key_failure else \
            "the migration failed late, as it does when the destination's vTPM secret differs"
        return Diagnosis(cause=f"{why}: the destination's copy of secret {names} most probably holds a "
                               f"different value than the source's"
                               + (" (it was private there, so migcoord could not compare it)" if unverified else ""),
                         evidence=evidence, hint=fix)
    if evidence:
        return Diagnosis(cause="the destination's logs name the failure (see evidence)", evidence=evidence)
    return Diagnosis(cause="", evidence=())


def gather(runner: CommandRunner, domain: str) -> tuple[str, str]:
    """(swtpm log tail, QEMU log tail) of ``domain`` on the runner's host; "" for a missing log."""
    out = []
    for path in (SWTPM_LOG.format(name=domain), QEMU_LOG.format(name=domain)):
        r = runner.run("tail -n {} {}", str(TAIL_LINES), path)
        out.append(r.stdout if r.ok else "")
    return out[0], out[1]
