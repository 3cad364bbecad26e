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
        # NOTE: an unverifiable copy is an unknown, not a failure: libvirt uses whatever value it holds. The
        # check is error-severity, so the unknown is decisive (registry.decisive): if the values differ the
        # migration fails late in swtpm ("job 'migration out' unexpectedly failed").
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
    ("SECRET-UNVERIFIABLE", "error", "the destination copy cannot be compared (private there, or no value "
     "available here) and a different value fails the migration late: make it known with "
     "--reset-secret-values (a private copy; the value comes from the readable source or a value source) or a "
     "value source (--secret-file/--secret-dir/--secret-command/--secret-stdin) to compare with; or undefine "
     "the destination copy so migcoord provisions it; --accept-unknown goes on with it as it is"),
    ("SECRET-USAGE-TAKEN", "error", "another secret on the destination (another UUID) already has this usage, "
     "so libvirt refuses to define the domain's secret there (\"a secret with UUID ... already defined for use "
     "with ...\"): undefine or change that secret on the destination (virsh secret-undefine), or give the "
     "domain's secret another usage on the source"),
]

for _id, _sev, _hint in _SPECS:
    _fn = _secret_check(_id)
    _fn.__doc__ = f"Secrets: {_id.removeprefix('SECRET-').lower().replace('-', ' ')}."
    check(_id, severity=_sev, tags=("secrets",), hint=_hint)(_fn)
