#!/usr/bin/python
# Apache-2.0
from __future__ import annotations

DOCUMENTATION = r"""
module: check
short_description: Run migcoord's pre-flight checks for migrating domains (read-only)
description:
  - Every check migcoord runs before a migration (hosts, domain, secrets and their values, TPM,
    CPU, memory, networks, storage, transport; over SSH with C(ssh=true)). Never changes anything,
    so check mode and normal mode are the same.
options:
  domains: {description: Domain names, UUIDs or ids., type: list, elements: str, required: true}
  src: {description: Source libvirt URI or host alias., type: str, required: true}
  dst: {description: Destination libvirt URI or host alias., type: str, required: true}
  offline: {description: Check for an offline migration., type: bool, default: false}
  copy_storage: {description: Local disks will be copied., type: bool, default: false}
  unsafe: {description: Disks are on shared storage libvirt cannot detect., type: bool, default: false}
  fail_on_block: {description: Fail the task when a check blocks., type: bool, default: true}
notes:
  - Value-source, ssh, skip and waive options as in M(migcoord.libvirt.migrate).
author: migration-coordinator developers
"""

RETURN = r"""
report: {description: "The report: ok, blocking ids, counts, findings (id, severity, status, subject, message, hint).",
         returned: always, type: dict}
"""

from ansible_collections.migcoord.libvirt.plugins.module_utils.migcoord_common import (  # noqa: E402
    COMMON_ARGS, options, run_module)


def _check(module, settings):
    import dataclasses

    import checks
    import coordinator
    p = module.params
    opts = dataclasses.replace(options(p, settings, policy=False), policy=coordinator.MigrationPolicy(
        live=not p["offline"], copy_storage=p["copy_storage"], unsafe=p["unsafe"]))
    report = checks.preflight(settings.uri(p["src"]), settings.uri(p["dst"]), p["domains"], opts)
    out = report.as_dict()
    if not report.ok and p["fail_on_block"]:
        module.fail_json(msg="blocked by " + ", ".join(out["blocking"]), report=out, exit_code=1)
    module.exit_json(changed=False, report=out)


def main():
    run_module(dict(domains=dict(type="list", elements="str", required=True), src=dict(type="str", required=True),
                    dst=dict(type="str", required=True), offline=dict(type="bool", default=False),
                    copy_storage=dict(type="bool", default=False), unsafe=dict(type="bool", default=False),
                    fail_on_block=dict(type="bool", default=True), **COMMON_ARGS), _check)


if __name__ == "__main__":
    main()
