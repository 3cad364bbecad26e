"""Pure: the settings file's schema, its validation, and the merge of every layer of settings.

The file (``/etc/migcoord/config.toml``) is read by the command line (``cli/settings``) with the
standard library's ``tomllib``; this module only sees the resulting dict, the environment as a
mapping and what the command line gave, and returns the effective settings with the origin of
each one. Precedence, highest first: command line > environment (``MIGCOORD_*``) > file >
built-in defaults.

Every problem is a ``BadInput`` (exit 2) naming ``FILE:KEY`` (or ``env:NAME``), found before any
connection (house rule 15). Nothing here ever holds a secret value: value *sources* are paths and
helper commands, never bytes.
"""
from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from coordinator.core import defaults
from coordinator.core.errors import BadInput
from coordinator.core.ids import canonical_uuid
from coordinator.core.params import MAX_BANDWIDTH_MIB, MAX_DEADLINE_S, MAX_PARALLEL
from coordinator.core.uris import check_uri

DEFAULT_PATH = defaults.CONFIG_PATH
ENV_CONFIG = defaults.CONFIG_ENV


@dataclass(frozen=True)
class Spec:
    """One scalar setting: its type (bool | int | float | str | path | level), its built-in default,
    the argparse dest it fills (when the command has it) and its environment variable."""

    key: str
    type: str
    default: Any
    dest: str
    help: str = ""
    env: str = ""
    minimum: float | None = None
    maximum: float | None = None

    @property
    def env_name(self) -> str:
        return self.env or "MIGCOORD_" + self.key.replace(".", "_").upper()


def _s(key: str, type_: str, default: Any, dest: str, help_: str, env: str = "",
       minimum: float | None = None, maximum: float | None = None) -> Spec:
    return Spec(key, type_, default, dest, help_, env, minimum, maximum)


# The table of scalar settings: [section] key, type, default, the command-line option's dest.
SPECS: tuple[Spec, ...] = (
    _s("migration.keep_source", "bool", False, "keep_source", "keep the source definition (--keep-source)"),
    _s("migration.tls", "bool", False, "tls", "encrypt the QEMU migration stream (--tls)"),
    _s("migration.bandwidth", "int", None, "bandwidth", "MiB/s limit (--bandwidth)", minimum=1,
       maximum=MAX_BANDWIDTH_MIB),
    _s("migration.parallel_connections", "int", None, "parallel_connections", "--parallel-connections",
       minimum=1, maximum=MAX_PARALLEL),
    _s("migration.compression", "str", None, "compression", "--compression"),
    _s("migration.auto_converge", "bool", False, "auto_converge", "--auto-converge"),
    _s("migration.postcopy", "bool", False, "postcopy", "--postcopy"),
    _s("migration.copy_storage", "bool", False, "copy_storage", "--copy-storage"),
    _s("migration.unsafe", "bool", False, "unsafe", "--unsafe"),
    _s("migration.accept_unknown", "bool", False, "accept_unknown",
       "go on when a fact that decides success is unknown (--accept-unknown)"),
    _s("migration.timeout", "float", None, "timeout", "completion deadline in s (--timeout)", minimum=1,
       maximum=MAX_DEADLINE_S),
    _s("migration.timeout_per_gib", "float", defaults.TIMEOUT_PER_GIB_S, "timeout_per_gib",
       "without a timeout: s per GiB of guest memory (--timeout-per-gib)", minimum=1),
    _s("migration.timeout_minimum", "float", defaults.TIMEOUT_MINIMUM_S, "timeout_minimum",
       "without a timeout: at least this many s (--timeout-minimum)", minimum=1, maximum=MAX_DEADLINE_S),
    _s("migration.stall_timeout", "float", defaults.STALL_TIMEOUT_S, "stall_timeout", "--stall-timeout",
       minimum=1, maximum=MAX_DEADLINE_S),
    _s("migration.retries", "int", defaults.RETRY_ATTEMPTS, "retries", "attempts on transient errors (--retries)",
       minimum=1),
    _s("migration.retry_max_seconds", "float", defaults.RETRY_MAX_SECONDS, "retry_max_seconds",
       "--retry-max-seconds", minimum=0),
    _s("evacuate.parallel", "int", 2, "parallel", "concurrent migrations (--parallel)", minimum=1),
    _s("evacuate.per_destination", "int", 2, "per_destination", "--per-destination", minimum=1),
    _s("evacuate.max_duration", "float", None, "max_duration", "start nothing new after S s (--max-duration)",
       minimum=1),
    _s("evacuate.include_inactive", "bool", False, "include_inactive", "--include-inactive"),
    _s("ssh.enabled", "bool", False, "ssh", "run the SSH checks (--ssh)"),
    _s("ssh.user", "str", None, "ssh_user", "--ssh-user"),
    _s("ssh.port", "int", None, "ssh_port", "--ssh-port", minimum=1, maximum=65535),
    _s("ssh.key", "path", None, "ssh_key", "--ssh-key"),
    _s("ssh.known_hosts", "path", None, "ssh_known_hosts", "--ssh-known-hosts"),
    _s("ssh.timeout", "float", None, "ssh_timeout", "--ssh-timeout", minimum=0.1),
    _s("ssh.config", "path", None, "ssh_config", "OpenSSH client config (--ssh-config)"),
    _s("paths.journal", "path", defaults.JOURNAL_PATH, "journal", "audit journal (--journal)",
       env=defaults.JOURNAL_ENV),
    _s("paths.report", "path", None, "report", "evacuate's JSON report; {source} = source host (--report)"),
    _s("paths.metrics", "path", None, "metrics_file",
       "node_exporter textfile; {command} = migrate|evacuate, {source} = source host (--metrics-file)"),
    _s("paths.lock_dir", "path", defaults.LOCK_DIR, "lock_dir", "lock directory", env=defaults.LOCK_DIR_ENV),
    _s("logging.level", "level", "warning", "log_level", "debug|info|warning|error (--log-level)"),
    _s("logging.syslog", "bool", False, "syslog", "also log to syslog (--syslog)"),
    _s("logging.quiet", "bool", False, "quiet", "no progress events (--quiet)"),
)
SPEC_BY_KEY = {s.key: s for s in SPECS}
SECTIONS = sorted({s.key.split(".")[0] for s in SPECS})
_HOST_SSH_KEYS = {"user": "str", "port": "int", "key": "path", "known_hosts": "path"}
_SOURCE_KINDS = ("file", "dir", "command")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class HostSsh:
    """Per-host SSH settings from ``[hosts.NAME.ssh]`` (None: not set there)."""

    user: str | None = None
    port: int | None = None
    key: str | None = None
    known_hosts: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class HostAlias:
    name: str
    uri: str
    ssh: HostSsh = field(default_factory=HostSsh)


@dataclass(frozen=True)
class SourceSpec:
    """A value source from ``[[sources]]``: one of file/dir/command, for one UUID, a usage
    pattern (fnmatch on the secret's usage id), or any secret (neither)."""

    kind: str
    arg: str
    uuid: str | None = None
    usage: str | None = None

    def applies_to(self, uuid: str, usage_id: str | None) -> bool:
        if self.uuid is not None and self.uuid != uuid:
            return False
        return self.usage is None or (usage_id is not None and fnmatch.fnmatchcase(usage_id, self.usage))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("kind", self.kind), ("arg", self.arg), ("uuid", self.uuid),
                                  ("usage", self.usage)) if v is not None}


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    origin: str  # "default" | "file:PATH" | "env:NAME" | "command line"


@dataclass(frozen=True)
class Effective:
    """The merged settings. ``settings`` holds every scalar in ``SPECS`` order."""

    path: str | None
    settings: tuple[Setting, ...]
    hosts: Mapping[str, HostAlias] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sources: tuple[SourceSpec, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.setting(key).value

    def setting(self, key: str) -> Setting:
        for s in self.settings:
            if s.key == key:
                return s
        raise KeyError(key)

    def resolve_host(self, name_or_uri: str) -> str:
        """A host alias → its URI; anything else is returned as is (a URI, checked later)."""
        alias = self.hosts.get(name_or_uri)
        return alias.uri if alias is not None else name_or_uri

    def group(self, name: str) -> tuple[str, ...]:
        """The URIs of a destination group."""
        if name not in self.groups:
            known = ", ".join(sorted(self.groups)) or "none defined"
            raise BadInput(f"unknown destination group {name!r} (groups: {known})",
                           hint=f"define it under [groups] in {self.path or DEFAULT_PATH}")
        return tuple(self.hosts[h].uri for h in self.groups[name])

    def host_ssh(self) -> dict[str, HostSsh]:
        """Per-host SSH settings keyed by the host name in the alias's URI."""
        out = {}
        for alias in self.hosts.values():
            host = urlsplit(alias.uri).hostname
            if host and alias.ssh.as_dict():
                out[host] = alias.ssh
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path,
                "settings": {s.key: {"value": s.value, "origin": s.origin} for s in self.settings},
                "hosts": {n: {"uri": h.uri, **({"ssh": h.ssh.as_dict()} if h.ssh.as_dict() else {})}
                          for n, h in sorted(self.hosts.items())},
                "groups": {n: list(m) for n, m in sorted(self.groups.items())},
                "sources": [s.as_dict() for s in self.sources]}


# ------------------------------------------------------------------ typed values

def _convert(type_: str, value: Any, where: str, minimum: float | None = None,
             maximum: float | None = None) -> Any:
    """A TOML value checked against ``type_`` (bool is not an int here; an int is a float; nan and inf
    are no number of anything)."""
    ok: bool
    if type_ == "bool":
        ok = isinstance(value, bool)
    elif type_ == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_ == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif type_ == "level":
        ok = isinstance(value, str) and value.lower() in defaults.LOG_LEVELS
        value = value.lower() if ok else value
    else:  # str, path
        ok = isinstance(value, str) and value != "" and "\0" not in value
    if not ok:
        want = {"bool": "true or false", "int": "an integer", "float": "a finite number",
                "level": " | ".join(defaults.LOG_LEVELS), "str": "a non-empty string",
                "path": "a non-empty path string"}[type_]
        raise BadInput(f"{where}: expected {want}, got {value!r}")
    if minimum is not None and value < minimum:
        raise BadInput(f"{where}: must be at least {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise BadInput(f"{where}: must be at most {maximum:g}, got {value!r}")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_value(spec: Spec, text: str) -> Any:
    """An environment variable's text as the setting's type."""
    where = f"env:{spec.env_name}"
    value: Any = text
    if spec.type == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise BadInput(f"{where}: expected one of {', '.join(_TRUE + _FALSE)}, got {text!r}")
        value = text.lower() in _TRUE
    elif spec.type in ("int", "float"):
        try:
            value = int(text) if spec.type == "int" else float(text)
        except ValueError:
            raise BadInput(f"{where}: expected {'an integer' if spec.type == 'int' else 'a number'}, "
                           f"got {text!r}") from None
    return _convert(spec.type, value, where, spec.minimum, spec.maximum)


# ------------------------------------------------------------------ the file

def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{where}: expected a table, got {value!r}")
    return value


def _unknown(where: str, key: str, known: Sequence[str]) -> BadInput:
    return BadInput(f"{where}{key}: unknown key", hint=f"known here: {', '.join(sorted(known))}")


def _hosts(path: str, raw: Any) -> dict[str, HostAlias]:
    out = {}
    for name, body in _table(raw, f"{path}:hosts").items():
        where = f"{path}:hosts.{name}"
        if not _NAME_RE.match(name):
            raise BadInput(f"{where}: a host name is letters, digits, '.', '_' and '-'")
        body = _table(body, where)
        for k in body:
            if k not in ("uri", "ssh"):
                raise _unknown(f"{where}.", k, ("uri", "ssh"))
        if "uri" not in body:
            raise BadInput(f"{where}.uri: missing", hint='e.g. uri = "qemu+ssh://hv1.example/system"')
        uri = _convert("str", body["uri"], f"{where}.uri")
        try:
            check_uri(uri)
        except BadInput as e:
            raise BadInput(f"{where}.uri: {e.message}", hint=e.hint) from None
        ssh: dict[str, Any] = {}
        for k, v in _table(body.get("ssh", {}), f"{where}.ssh").items():
            if k not in _HOST_SSH_KEYS:
                raise _unknown(f"{where}.ssh.", k, tuple(_HOST_SSH_KEYS))
            ssh[k] = _convert(_HOST_SSH_KEYS[k], v, f"{where}.ssh.{k}", *((1, 65535) if k == "port" else ()))
        out[name] = HostAlias(name, uri, HostSsh(**ssh))
    return out


def _groups(path: str, raw: Any, hosts: Mapping[str, HostAlias]) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, members in _table(raw, f"{path}:groups").items():
        where = f"{path}:groups.{name}"
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise BadInput(f"{where}: expected a non-empty list of host names, got {members!r}")
        for m in members:
            if m not in hosts:
                raise BadInput(f"{where}: unknown host {m!r}", hint=f"define it as [hosts.{m}] with a uri")
        if len(set(members)) != len(members):
            raise BadInput(f"{where}: a host is listed twice")
        out[name] = tuple(members)
    return out


def _sources(path: str, raw: Any) -> tuple[SourceSpec, ...]:
    if not isinstance(raw, list):
        raise BadInput(f"{path}:sources: expected an array of tables ([[sources]]), got {raw!r}")
    out = []
    for i, body in enumerate(raw):
        where = f"{path}:sources[{i}]"
        body = _table(body, where)
        for k in body:
            if k not in (*_SOURCE_KINDS, "uuid", "usage"):
                raise _unknown(f"{where}.", k, (*_SOURCE_KINDS, "uuid", "usage"))
        kinds = [k for k in _SOURCE_KINDS if k in body]
        if len(kinds) != 1:
            raise BadInput(f"{where}: give exactly one of file, dir, command")
        kind = kinds[0]
        if kind == "command" and not (isinstance(body[kind], str) and body[kind]):
            # NOTE: never echoed (what _convert would do): a helper command's words may be a token.
            raise BadInput(f"{where}.command: expected a non-empty string (the helper and its arguments, "
                           f"split like a shell would), got a {type(body[kind]).__name__}")
        arg = _convert("str", body[kind], f"{where}.{kind}")
        uuid = None
        if "uuid" in body:
            try:
                uuid = canonical_uuid(_convert("str", body["uuid"], f"{where}.uuid"))
            except BadInput as e:
                raise BadInput(f"{where}.uuid: {e.message}") from None
        usage = _convert("str", body["usage"], f"{where}.usage") if "usage" in body else None
        if kind == "file" and uuid is None and usage is None:
            raise BadInput(f"{where}: a file source needs a uuid or a usage pattern")
        out.append(SourceSpec(kind, arg, uuid, usage))
    return tuple(out)


@dataclass(frozen=True)
class FileConfig:
    """The validated file: scalar settings by key, hosts, groups, sources."""

    path: str
    values: Mapping[str, Any] = field(default_factory=dict)
    hosts: Mapping[str, HostAlias] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sources: tuple[SourceSpec, ...] = ()


def parse_file(path: str, data: Mapping[str, Any]) -> FileConfig:
    """Validate a ``tomllib``-loaded document. Unknown keys and wrong types are errors."""
    values: dict[str, Any] = {}
    for section, body in data.items():
        if section in ("hosts", "groups", "sources"):
            continue
        if section not in SECTIONS:
            raise _unknown(f"{path}:", section, (*SECTIONS, "hosts", "groups", "sources"))
        for k, v in _table(body, f"{path}:{section}").items():
            key = f"{section}.{k}"
            spec = SPEC_BY_KEY.get(key)
            if spec is None:
                raise _unknown(f"{path}:{section}.", k, [s.key.split(".", 1)[1] for s in SPECS
                                                         if s.key.startswith(section + ".")])
            values[key] = _convert(spec.type, v, f"{path}:{key}", spec.minimum, spec.maximum)
    hosts = _hosts(path, data.get("hosts", {}))
    groups = _groups(path, data.get("groups", {}), hosts)
    return FileConfig(path, values, hosts, groups, _sources(path, data.get("sources", [])))


# ------------------------------------------------------------------ the merge

def merge(file: FileConfig | None, environ: Mapping[str, str], cli: Mapping[str, Any]) -> Effective:
    """command line > environment > file > default, per setting. ``cli`` maps a setting key to
    what the command line gave (only what it gave)."""
    out = []
    for spec in SPECS:
        if spec.key in cli:
            out.append(Setting(spec.key, cli[spec.key], "command line"))
        elif environ.get(spec.env_name, "") != "":
            out.append(Setting(spec.key, env_value(spec, environ[spec.env_name]), f"env:{spec.env_name}"))
        elif file is not None and spec.key in file.values:
            out.append(Setting(spec.key, file.values[spec.key], f"file:{file.path}"))
        else:
            out.append(Setting(spec.key, spec.default, "default"))
    if file is None:
        return Effective(None, tuple(out))
    return Effective(file.path, tuple(out), file.hosts, file.groups, file.sources)


def config_path(cli_path: str | None, environ: Mapping[str, str]) -> tuple[str, bool]:
    """(path, required): ``--config`` > ``MIGCOORD_CONFIG`` > the default path. A path the
    operator named must exist; the default may be absent."""
    if cli_path:
        return cli_path, True
    if environ.get(ENV_CONFIG):
        return environ[ENV_CONFIG], True
    return DEFAULT_PATH, False
