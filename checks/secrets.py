"""Secret checks: every secret the domain depends on, from ``SecretProvisioner.plan`` (reads only).

One plan per domain is computed and shared; each plan that blocks maps to exactly one id
(``SecretPlan.check_id``, decided in ``coordinator.core.secret_rules``), so each problem can be
skipped or waived on its own.
"""
from __future__ import annotations


from .context import CheckContext, Target
from .registry import DomainCheckFn, Results, check, failed, passed, unknown

_VALUE_HINT = ("give the value with --secret-file/--secret-dir/--secret-command/--secret-stdin, "
               "or make the source secret readable")


def _secret_check(check_id: str) -> DomainCheckFn:
    def run(ctx: CheckContext, t: Target) -> Results:
        plans, failing = ctx.plans_by_check(t)
        bad = failing.get(check_id, ())
        # NOTE: an unverifiable copy is an unknown, not a failure: libvirt uses whatever value it holds.
        result = unknown if check_id == "SECRET-UNVERIFIABLE" else failed
        if bad:
            return [result(f"secret {p.uuid or p.ref.usage_id} ({p.ref.kind}): {p.reason}") for p in bad]
        return passed(f"{len(plans)} secret(s) checked" if plans else "the domain references no secret")
    return run


_SPECS = [
    ("SECRET-MISSING-ON-SOURCE", "error", "the secret is on neither host: define it on the destination (or "
     "the source) with the value the domain's data was encrypted with"),
    ("SECRET-USAGE-MISMATCH", "error", "the destination copy has another usage type (or, for a secret the "
     "domain references by usage, another usage id) than libvirt will look for; fix or undefine it (virsh "
     "secret-undefine) so it can be provisioned"),
    ("SECRET-VALUE-MISMATCH", "error", "the destination holds a different value: set the right value there "
     "(or undefine it so migcoord provisions it); the migration would fail late in swtpm"),
    ("SECRET-FLAGS-MISMATCH", "error", "the destination copy's private/ephemeral flags differ from what the "
     "policy asks (--dest-private/--dest-ephemeral); redefine it or change the policy"),
    ("SECRET-NO-VALUE-SOURCE", "error", _VALUE_HINT),
    ("SECRET-UNVERIFIABLE", "warning", "the destination copy cannot be compared (private, or no value "
     "available): the verdict is GO with this unknown; pass a value source (and --reset-secret-values for a "
     "private copy) to make it known"),
]

for _id, _sev, _hint in _SPECS:
    _fn = _secret_check(_id)
    _fn.__doc__ = f"Secrets: {_id.removeprefix('SECRET-').lower().replace('-', ' ')}."
    check(_id, severity=_sev, tags=("secrets",), hint=_hint)(_fn)
