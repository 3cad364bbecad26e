#!/usr/bin/python
# Apache-2.0
from __future__ import annotations

DOCUMENTATION = r"""
module: evacuate
short_description: Move every domain off a libvirt host (migcoord evacuate)
description:
  - Plans (checks + capacity) and migrates every running domain (with C(include_inactive), also
    shut-off persistent ones) off C(src) to the best of C(dsts), with their secrets.
  - Check mode returns the plan (domain → destination, secrets to provision, blockers) and changes nothing.
options:
  src: {description: The host to empty (libvirt URI or host alias)., type: str, required: true}
  dsts: {description: Destinations (URIs or host aliases)., type: list, elements: str, default: []}
  dst_group: {description: A destination group of the settings file., type: str}
  include_inactive: {description: Also move shut-off persistent domains (offline)., type: bool, default: false}
  exclude: {description: Names or globs to leave alone., type: list, elements: str, default: []}
  parallel: {description: Concurrent migrations., type: int, default: 2}
  per_destination: {description: Concurrent migrations into one destination., type: int, default: 2}
  max_duration: {description: Start nothing new after this many seconds., type: float}
  fail_on_partial: {description: Fail the task unless every domain moved., type: bool, default: true}
  maintenance:
    description:
      - Mark C(src) as draining (C(migcoord maintenance)) before planning, so no coordinator places domains
        back onto it. The mark stays after the task; clear it with C(migcoord maintenance off URI).
      - Check mode never marks.
    type: bool
    default: true
notes:
  - Value-source, policy, ssh, skip and waive options as in M(migcoord.libvirt.migrate).
author: migration-coordinator developers
"""

RETURN = r"""
plan: {description: The plan (check mode)., returned: check mode, type: dict}
report: {description: "Outcome per domain (state, destination, reason, duration), exit_code, plan.",
         returned: not check mode, type: dict}
"""

from ansible_collections.migcoord.libvirt.plugins.module_utils.migcoord_common import (  # noqa: E402
    COMMON_ARGS, POLICY_ARGS, options, run_module)


def _destinations(module, settings):
    p = module.params
    dsts = [settings.uri(d) for d in p["dsts"]]
    src = settings.uri(p["src"])
    if p["dst_group"]:
        try:
            dsts += [u for u in settings.group(p["dst_group"]) if u not in dsts and u != src]
        except KeyError:
            module.fail_json(msg=f"unknown destination group {p['dst_group']!r} in {p['config']}", exit_code=2)
    return src, dsts


def _evacuate(module, settings):
    from pathlib import Path

    import coordinator
    from coordinator.steps.journal import Journal
    p = module.params
    src, dsts = _destinations(module, settings)
    ev = coordinator.EvacuationPolicy(include_inactive=p["include_inactive"], exclude=tuple(p["exclude"]),
                                      parallel=p["parallel"], per_destination=p["per_destination"],
                                      max_duration_s=p["max_duration"], mark_source=p["maintenance"])
    opts = options(p, settings)
    if module.check_mode:
        plan = coordinator.plan_evacuation(src, dsts, ev, opts)
        module.exit_json(changed=bool(plan.placed), plan=plan.as_dict(),
                         unplaceable=[d.name for d in plan.unplaceable])
    report = coordinator.evacuate(src, dsts, ev, opts, coordinator.Runtime(
        journal=Journal(Path(p["journal"])), lock_dir=Path(p["lock_dir"])))
    out = report.as_dict()
    moved = [o.domain for o in report.outcomes if o.state == "migrated"]
    if report.exit_code != 0 and p["fail_on_partial"]:
        module.fail_json(msg=f"evacuation of {src} incomplete (exit code {report.exit_code})", report=out,
                         exit_code=report.exit_code, changed=bool(moved))
    module.exit_json(changed=bool(moved), report=out, moved=moved)


def main():
    run_module(dict(src=dict(type="str", required=True), dsts=dict(type="list", elements="str", default=[]),
                    dst_group=dict(type="str"), include_inactive=dict(type="bool", default=False),
                    exclude=dict(type="list", elements="str", default=[]), parallel=dict(type="int", default=2),
                    per_destination=dict(type="int", default=2), max_duration=dict(type="float"),
                    fail_on_partial=dict(type="bool", default=True), maintenance=dict(type="bool", default=True),
                    **COMMON_ARGS, **POLICY_ARGS), _evacuate)


if __name__ == "__main__":
    main()
