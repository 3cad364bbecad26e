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

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.migcoord.libvirt.plugins.module_utils.migcoord_common import (  # noqa: E402
    COMMON_ARGS, Settings, check_library, error_result, options)


def main():
    spec = dict(domains=dict(type="list", elements="str", required=True), src=dict(type="str", required=True),
                dst=dict(type="str", required=True), offline=dict(type="bool", default=False),
                copy_storage=dict(type="bool", default=False), unsafe=dict(type="bool", default=False),
                fail_on_block=dict(type="bool", default=True), **COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    check_library(module)
    import dataclasses

    import checks
    import coordinator
    p = module.params
    try:
        settings = Settings(p["config"])
        opts = options(p, settings, policy=False)
        opts = dataclasses.replace(opts, policy=coordinator.MigrationPolicy(
            live=not p["offline"], copy_storage=p["copy_storage"], unsafe=p["unsafe"]))
        report = checks.preflight(settings.uri(p["src"]), settings.uri(p["dst"]), p["domains"], opts)
    except coordinator.MigcoordError as e:
        module.fail_json(**error_result(e))
    except ValueError as e:  # bad module input (e.g. secret_values not base64); never carries a value
        module.fail_json(msg=str(e), exit_code=2)
    out = report.as_dict()
    if not report.ok and p["fail_on_block"]:
        module.fail_json(msg="blocked by " + ", ".join(out["blocking"]), report=out, exit_code=1)
    module.exit_json(changed=False, report=out)


if __name__ == "__main__":
    main()
