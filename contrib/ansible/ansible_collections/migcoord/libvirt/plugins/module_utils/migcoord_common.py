"""Shared by the migcoord.libvirt modules: options → the migcoord library's parameter objects.

The modules call the library (``coordinator``, ``checks``) in the Python that runs them — set
``ansible_python_interpreter`` to the venv migcoord is installed in. Secret values given inline
(``secret_values``, from Ansible Vault) are ``no_log`` and stay in memory: the library never
writes a value anywhere, and neither does this code.
"""
from __future__ import annotations

import traceback
from pathlib import Path

LIB_IMPORT_ERROR = None
try:
    from coordinator import KeyRing, MigrateOptions, MigrationPolicy, RetryPolicy, SshConfig, TimeoutPolicy
    from coordinator import SecretPolicy, ValueSource
    from coordinator.core.config import parse_file
    from coordinator.steps.keys import decode_base64
    from coordinator.files.configfile import load_config_file
except ImportError:  # reported by fail_json in check_library()
    LIB_IMPORT_ERROR = traceback.format_exc()
    KeyRing = object  # type: ignore

COMMON_ARGS = dict(
    config=dict(type="path", required=False),
    secret_dir=dict(type="path", no_log=False),
    secret_files=dict(type="dict", default={}, no_log=False),     # UUID → path of an owner-only file
    secret_command=dict(type="str", no_log=True),  # its words may be a token: never logged (argv[0] is
                                                   # what migcoord records of it)
    secret_values=dict(type="dict", default={}, no_log=True),     # UUID → base64 of the value (as virsh
                                                                  # secret-set-value takes it); never logged
    no_source_api=dict(type="bool", default=False),
    ssh=dict(type="bool", default=False),
    ssh_user=dict(type="str"),
    ssh_port=dict(type="int"),
    ssh_key=dict(type="path", no_log=False),
    ssh_known_hosts=dict(type="path"),
    ssh_config=dict(type="path"),
    skip=dict(type="list", elements="str", default=[]),
    waive=dict(type="list", elements="str", default=[]),
)

POLICY_ARGS = dict(
    keep_source=dict(type="bool", default=False),
    offline=dict(type="bool", default=False),
    tls=dict(type="bool", default=False),
    bandwidth=dict(type="int"),
    auto_converge=dict(type="bool", default=False),
    postcopy=dict(type="bool", default=False),
    copy_storage=dict(type="bool", default=False),
    unsafe=dict(type="bool", default=False),
    timeout=dict(type="float"),
    retries=dict(type="int", default=4),
    journal=dict(type="path", default="/var/log/migcoord/journal.jsonl"),
    lock_dir=dict(type="path", default="/run/migcoord"),
)


def run_module(spec, body):
    """The modules' one skeleton: parse the arguments, make sure the library imports, then
    ``body(module, settings)``, which ends with ``module.exit_json``/``fail_json``. A migcoord error fails
    the task with its message, hint, exit code and report; bad module input (e.g. secret_values not
    base64) fails it with exit code 2 — neither ever carries a value."""
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    check_library(module)
    import coordinator
    try:
        body(module, Settings(module.params["config"]))
    except coordinator.MigcoordError as e:
        module.fail_json(**error_result(e))
    except ValueError as e:
        module.fail_json(msg=str(e), exit_code=2)


def check_library(module):
    if LIB_IMPORT_ERROR is not None:
        module.fail_json(msg="the migcoord library (coordinator) cannot be imported by "
                             "ansible_python_interpreter; install migration-coordinator into it",
                         exception=LIB_IMPORT_ERROR)


class InlineKeyRing(KeyRing):  # type: ignore[misc,valid-type]
    """The operator's sources, preceded by values given inline (``secret_values``).

    Each value is decoded from base64 straight into a bytearray and held by the keyring like a value
    read from a key file (``KeyRing.hold``): no core dump while held, zeroed when the run ends, no
    immutable copy kept. (The base64 text itself is Ansible's: it stays in the module's arguments.)"""

    def __init__(self, values, sources):
        super().__init__(sources)
        self._has_inline = bool(values)
        try:
            for uuid, text in values.items():
                try:
                    data = decode_base64(text if isinstance(text, str) else str(text))
                except ValueError:
                    # NOTE: the message names the UUID only, never the text
                    raise ValueError(f"secret_values[{uuid}] is not base64") from None
                self.hold(uuid, data, "ansible:secret_values")
        except BaseException:
            self.clear()  # what was held already is wiped (and core dumps are allowed again)
            raise

    def has_sources(self):
        return self._has_inline or super().has_sources()


class Settings:
    """Host aliases, groups and value sources of a migcoord settings file (optional)."""

    def __init__(self, path):
        self.file = parse_file(path, load_config_file(Path(path))) if path else None

    def uri(self, name):
        if self.file is not None and name in self.file.hosts:
            return self.file.hosts[name].uri
        return name

    def group(self, name):
        if self.file is None or name not in self.file.groups:
            raise KeyError(name)
        return [self.file.hosts[h].uri for h in self.file.groups[name]]

    def sources(self):
        if self.file is None:
            return []
        return [ValueSource(s.kind, s.arg, s.uuid, s.usage) for s in self.file.sources]


def options(p, settings, dry_run=False, policy=True):
    """The library's MigrateOptions from the module's parameters."""
    sources = [ValueSource("file", path, uuid.lower()) for uuid, path in p["secret_files"].items()]
    if p.get("secret_dir"):
        sources.append(ValueSource("dir", p["secret_dir"]))
    if p.get("secret_command"):
        sources.append(ValueSource("command", p["secret_command"]))
    sources += settings.sources()
    ssh = None
    given = {k: v for k, v in (("user", p["ssh_user"]), ("port", p["ssh_port"]), ("key_file", p["ssh_key"]),
                                ("known_hosts", p["ssh_known_hosts"]), ("ssh_config", p["ssh_config"]))
             if v is not None}
    if p["ssh"] or given:
        ssh = SshConfig(**given)
    kw = dict(keyring=InlineKeyRing(p["secret_values"], sources), ssh=ssh, skip=tuple(p["skip"]),
              waive=tuple(p["waive"]), dry_run=dry_run,
              secret_policy=SecretPolicy(use_source_api=not p["no_source_api"]))
    if policy:
        kw["policy"] = MigrationPolicy(
            live=not p.get("offline", False), undefine_source=not p["keep_source"], tls=p["tls"],
            bandwidth_mib=p["bandwidth"], auto_converge=p["auto_converge"], postcopy=p["postcopy"],
            copy_storage=p["copy_storage"], unsafe=p["unsafe"])
        kw["timeouts"] = TimeoutPolicy(completion_s=p["timeout"])
        kw["retry"] = RetryPolicy(attempts=p["retries"])
    return MigrateOptions(**kw)


def error_result(e):
    """A MigcoordError as module output: message, hint, exit code, and the structured report."""
    out = dict(msg=str(e), error_type=type(e).__name__, exit_code=e.exit_code)
    for key in ("report", "diagnosis"):
        if key in e.data:
            out[key] = e.data[key]
    return out
