#!/usr/bin/python
# Apache-2.0
from __future__ import annotations

DOCUMENTATION = r"""
module: migrate
short_description: Live-migrate one libvirt domain with its secrets (migcoord)
description:
  - Confirms or provisions every libvirt secret the domain depends on (vTPM, disk encryption, ...)
    on the destination, runs migcoord's pre-flight checks, then migrates with virDomainMigrateToURI3.
  - Calls the migcoord library in the module's Python (set C(ansible_python_interpreter) to its venv).
  - Check mode is migcoord's dry run: secrets are planned and checks run; nothing changes anywhere.
options:
  domain: {description: Domain name, UUID or id., type: str, required: true}
  src: {description: Source libvirt URI or host alias of the settings file., type: str, required: true}
  dst: {description: Destination libvirt URI or host alias., type: str, required: true}
  config: {description: migcoord settings file for host aliases and value sources., type: path}
  secret_values:
    description: UUID → base64 of the value of private secrets (as virsh secret-set-value takes it; e.g. from
      Ansible Vault). Never logged (no_log), never written anywhere.
    type: dict
  secret_files: {description: UUID → owner-only key file., type: dict}
  secret_dir: {description: Directory of owner-only key files named by UUID., type: path}
  secret_command: {description: "Helper run without a shell, {uuid} substituted; value on stdout. Its words may
      be a token: never logged (no_log); migcoord records its program (argv[0]) only.", type: str}
notes:
  - The other options mirror C(migcoord migrate)'s (keep_source, offline, tls, bandwidth, auto_converge,
    postcopy, copy_storage, unsafe, timeout, retries, journal, lock_dir, ssh*, skip, waive).
author: migration-coordinator developers
"""

EXAMPLES = r"""
- name: Move db1 to hv2
  migcoord.libvirt.migrate:
    domain: db1
    src: qemu+ssh://hv1.example/system
    dst: qemu+ssh://hv2.example/system
    secret_values: "{{ vault_vtpm_values }}"
"""

RETURN = r"""
result: {description: "What migcoord did (state: migrated | already-on-destination | dry-run; secrets).",
         returned: success, type: dict}
report: {description: The pre-flight report when a check blocked., returned: blocked, type: dict}
exit_code: {description: "migcoord's exit code (1 blocked, 2 bad input, 3 failed, 75 busy).", returned: failure,
            type: int}
"""

from ansible_collections.migcoord.libvirt.plugins.module_utils.migcoord_common import (  # noqa: E402
    COMMON_ARGS, POLICY_ARGS, options, run_module)


def _migrate(module, settings):
    from pathlib import Path

    import coordinator
    from coordinator.steps.journal import Journal
    p = module.params
    runtime = coordinator.Runtime(lock_dir=Path(p["lock_dir"]))
    if not module.check_mode:  # a dry run writes nothing, not even the journal
        runtime = coordinator.Runtime(lock_dir=Path(p["lock_dir"]), journal=Journal(Path(p["journal"])))
    result = coordinator.migrate(p["domain"], settings.uri(p["src"]), settings.uri(p["dst"]),
                                 options(p, settings, dry_run=module.check_mode), runtime)
    module.exit_json(changed=result.state in ("migrated", "dry-run"), result=result.as_dict())


def main():
    run_module(dict(domain=dict(type="str", required=True), src=dict(type="str", required=True),
                    dst=dict(type="str", required=True), **COMMON_ARGS, **POLICY_ARGS), _migrate)


if __name__ == "__main__":
    main()
