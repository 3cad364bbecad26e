"""Host checks over SSH (transport ``ssh``): swtpm on the destination, versions, TPM-state space,
secrets stored unencrypted at rest.

The runner for a host comes from ``ctx.runner("src" | "dst")`` (a ``coordinator.ssh.runner.CommandRunner``,
or None when SSH is not configured: the check is then reported as skipped). Every command is a
format string plus quoted arguments (house rule 7). Parsing is done by the pure functions at the
top of this module, tested as tables in tests/unit/test_checks_ssh.py.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coordinator.core.domain.parse import domain_root
from coordinator.core.errors import BadInput
from coordinator.core.domain.facts import DomainFacts, TpmFacts
from coordinator.core.migration_rules import TPM_STATE_ROOT, fs_is_shared
from coordinator.core.versions import older, parse_version, version_str, version_text
from coordinator.core.secret_rules import wanted_flags

from .context import CheckContext, Target
from .registry import Results, Result, check, failed, passed, skipped

if TYPE_CHECKING:  # the SSH seam is loaded when a runner is made (CheckContext.runner), not at start-up
    from coordinator.ssh.runner import CommandRunner

SECRETS_DIR = "/etc/libvirt/secrets"        # where libvirtd (system) keeps persistent secrets
MIN_TPM_STATE_KIB = 10 * 1024               # one TPM 2.0 state is ~ 100 KiB; leave room for logs and a copy
SECRETS_ENCRYPTED_SINCE = 12_001_000        # libvirt 12.1 can encrypt persistent secret values at rest
SECRET_CONF = "/etc/libvirt/secret.conf"    # libvirt ≥ 12.1: encrypt_data, secrets_encryption_key
SECRETS_KEY = "/var/lib/libvirt/secrets/secrets-encryption-key"  # the default key (virt-secret-init-encryption)
SHARED_STORAGE_FEATURE = "cmdarg-migration"  # swtpm ≥ 0.8: --migration release-lock-outgoing
NO_SSH = "SSH not configured"


# ------------------------------------------------------------------ pure parsing

def encryption_settings(secret_conf: str) -> tuple[bool | None, str]:
    """Pure: (``encrypt_data``: None when not set, ``secrets_encryption_key`` or the default key path) from
    libvirt ≥ 12.1's secret.conf (src/secret/secret_config.c virSecretDaemonConfigNew)."""
    encrypt: bool | None = None
    key = SECRETS_KEY
    for line in secret_conf.splitlines():
        name, sep, value = line.split("#", 1)[0].partition("=")
        name, value = name.strip(), value.strip().strip('"')
        if not sep:
            continue
        if name == "encrypt_data":
            encrypt = value not in ("0", "")
        elif name == "secrets_encryption_key" and value:
            key = value
    return encrypt, key


def encrypts_at_rest(version: int, encrypt_data: bool | None, key_present: bool) -> bool:
    """Pure: whether the destination's secret driver stores a persistent value encrypted. NOTE: libvirt
    12.1+ encrypts only when it has a key (by default the one virt-secret-init-encryption seals with
    systemd-creds) and encrypt_data is not 0 — measured: Debian testing's libvirt 12.8 on a host without that
    key (the lab: no systemd) writes the plain base64 value, as 9.0 does."""
    return version >= SECRETS_ENCRYPTED_SINCE and encrypt_data is not False and key_present


@dataclass(frozen=True)
class SwtpmCaps:
    """``swtpm socket --print-capabilities``: {"type": "swtpm", "features": [...], "version": "0.7.1"}."""

    features: frozenset[str]
    version: str | None  # present since swtpm 0.7


def parse_capabilities(text: str) -> SwtpmCaps:
    """Raises ValueError when the output is not swtpm's capabilities JSON."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise ValueError("no \"features\" list")
    v = data.get("version")
    return SwtpmCaps(frozenset(str(f) for f in data["features"]), str(v) if v else None)


def required_features(tpm_versions: tuple[str | None, ...], shared_storage: bool) -> tuple[str, ...]:
    """Pure: the swtpm features migrating these emulated TPMs needs on the destination.

    ``cmdarg-pwd-fd``: libvirt passes the encryption and migration keys by fd (encrypted state);
    ``tpm-2.0`` / ``tpm-1.2``: the TPM version (libvirt's default is 2.0);
    ``cmdarg-migration``: TPM state on shared storage (libvirt ≥ 8.10 passes --migration)."""
    need = [f"tpm-{v or '2.0'}" for v in tpm_versions]
    need.append("cmdarg-pwd-fd")
    if shared_storage:
        need.append(SHARED_STORAGE_FEATURE)
    return tuple(dict.fromkeys(need))


def missing_features(caps: SwtpmCaps, needed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in needed if f not in caps.features)


@dataclass(frozen=True)
class DiskFree:
    filesystem: str
    total_kib: int
    avail_kib: int
    mount: str


_DF_ROW = re.compile(r"^(?P<fs>.+?)\s+(?P<total>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+(?P<cap>\d+%|-)\s+"
                     r"(?P<mount>/.*)$")


def parse_df(text: str) -> DiskFree:
    """Pure: the one filesystem row of ``df -Pk PATH`` (POSIX format, 1024-byte blocks).
    Filesystem names and mount points may contain spaces. Raises ValueError otherwise."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or not lines[0].lower().startswith("filesystem"):
        raise ValueError("not POSIX df output")
    # NOTE: a long filesystem name is never wrapped in -P format, but be lenient about a wrapped row.
    row = lines[1] if len(lines) == 2 else " ".join(lines[1:])
    m = _DF_ROW.match(row.strip())
    if not m:
        raise ValueError(f"unexpected df row: {row!r}")
    return DiskFree(m["fs"], int(m["total"]), int(m["avail"]), m["mount"])


SHARED_STATE_LIBVIRT = 8_010_000  # 8.10.0 as virConnectGetLibVersion encodes it


def tpm_state_dir(domain_xml: str | None) -> str:
    """Pure: where libvirt keeps this domain's TPM state on a host: ``<backend><source type='dir'
    path=...>`` (libvirt ≥ 10.x) or, by default, under /var/lib/libvirt/swtpm."""
    if domain_xml:
        try:
            root = domain_root(domain_xml)
        except BadInput:
            return TPM_STATE_ROOT
        for src in root.findall("devices/tpm/backend/source"):
            path = src.get("path")
            if path:
                return _state_dir(src.get("type", "dir"), path)
    return TPM_STATE_ROOT


def state_dir_of(facts: DomainFacts) -> str:
    """``tpm_state_dir`` of a domain's facts (``DomainFacts.tpm_state``: its XML already parsed)."""
    for kind, path in facts.tpm_state:
        return _state_dir(kind, path)
    return TPM_STATE_ROOT


def _state_dir(kind: str, path: str) -> str:
    return path if kind == "dir" else path.rsplit("/", 1)[0] or "/"


# ------------------------------------------------------------------ helpers

def _runner(ctx: CheckContext, role: str) -> CommandRunner | None:
    return ctx.runner(role)


def _emulated(t: Target) -> tuple[TpmFacts, ...]:
    return tuple(x for x in t.facts.tpms if x.backend == "emulator")


def _has_emulated(t: Target) -> bool:
    return bool(_emulated(t))


def _any_emulated(ctx: CheckContext) -> bool:
    return any(_has_emulated(t) for t in ctx.targets)


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _which(runner, program: str) -> str | None:
    """The program's path on the host, as libvirt would find it: on PATH, a regular executable file.

    NOTE: `command -v` alone also reports a name that is not a runnable file (bash finds a
    non-executable file on PATH); libvirt's virFindFileInPath requires a regular file with X_OK."""
    r = runner.run('p=$(command -v {}) && [ -f "$p" ] && [ -x "$p" ] && printf "%s\\n" "$p"', program)
    path = _first_line(r.stdout)
    return path if r.ok and path.startswith("/") else None


def _capabilities(ctx: CheckContext, runner: CommandRunner) -> SwtpmCaps:
    """The destination swtpm's capabilities (asked once per run). Raises ValueError with the reason when
    swtpm cannot report them."""
    r = ctx.host_facts.probe("dst", runner, "swtpm socket --print-capabilities")
    if not r.ok:
        raise ValueError(f"exit status {r.exit_status}" + (f": {_first_line(r.stderr)}" if r.stderr.strip() else ""))
    return parse_capabilities(r.stdout)


def _existing_dir(ctx: CheckContext, runner: CommandRunner, path: str) -> str:
    """``path`` or its nearest existing ancestor on the destination (libvirt creates the state dir on first
    use); asked once per path and run."""
    r = ctx.host_facts.probe("dst", runner,
                  'd={}; while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; printf "%s\\n" "$d"', path)
    return _first_line(r.stdout) or "/"


def _fs_type(ctx: CheckContext, runner: CommandRunner, path: str) -> str | None:
    r = ctx.host_facts.probe("dst", runner, "stat -f -c %T {}", path)
    return _first_line(r.stdout) if r.ok else None


# ------------------------------------------------------------------ checks

@check("SWTPM-MISSING", transport="ssh", scope="pair", tags=("ssh", "tpm", "swtpm"), concerns=_has_emulated,
       hint="install swtpm and swtpm-tools on the destination (e.g. apt-get install swtpm swtpm-tools); "
            "libvirt starts swtpm for every emulated TPM")
def swtpm_missing(ctx: CheckContext) -> Results:
    """swtpm and swtpm_setup are installed on the destination."""
    runner = _runner(ctx, "dst")
    if runner is None:
        return skipped(NO_SSH, ctx.dst_uri)
    if not _any_emulated(ctx):
        return passed("no domain has an emulated TPM", ctx.dst_uri)
    out: list[Result] = []
    for prog in ("swtpm", "swtpm_setup"):
        path = _which(runner, prog)
        out.append(passed(f"{prog} is {path}", ctx.dst_uri) if path else
                   failed(f"{prog} not found on {runner.host}", ctx.dst_uri))
    return out


@check("SWTPM-CAPABILITIES", transport="ssh", scope="domain", tags=("ssh", "tpm", "swtpm"),
       hint="upgrade swtpm on the destination: encrypted state needs cmdarg-pwd-fd, TPM state on shared "
            "storage needs swtpm ≥ 0.8 (cmdarg-migration); see `swtpm socket --print-capabilities`")
def swtpm_capabilities(ctx: CheckContext, t: Target) -> Results:
    """The destination's swtpm offers the TPM version, fd-passed keys and (shared state) migration support."""
    tpms = _emulated(t)
    if not tpms:
        return passed("the domain has no emulated TPM")
    runner = _runner(ctx, "dst")
    if runner is None:
        return skipped(NO_SSH)
    try:
        caps = _capabilities(ctx, runner)
    except ValueError as e:
        return failed(f"swtpm on {runner.host} cannot report its capabilities ({e})")
    state_dir = state_dir_of(t.facts)
    fs = _fs_type(ctx, runner, _existing_dir(ctx, runner, state_dir))
    shared = bool(fs and fs_is_shared(fs, ctx.host_facts.lib_version(ctx.destination)))
    needed = required_features(tuple(x.version for x in tpms), shared)
    missing = missing_features(caps, needed)
    where = f"TPM state in {state_dir} on {fs or 'an unknown filesystem'}" + (" (shared)" if shared else "")
    if shared:
        # NOTE: libvirt migrates TPM state on shared storage only from 8.10 on (both sides).
        old = [h.uri for h in (ctx.source, ctx.destination)
               if h is not None and ctx.host_facts.lib_version(h) < SHARED_STATE_LIBVIRT]
        if old:
            return failed(f"{where}: needs libvirt ≥ 8.10 on both hosts; older on {', '.join(old)}")
    if missing:
        return failed(f"swtpm {caps.version or '(unknown version)'} on {runner.host} lacks "
                      f"{', '.join(missing)}; {where}")
    return passed(f"swtpm {caps.version or '(unknown version)'} on {runner.host} offers {', '.join(needed)}; {where}")


@check("SWTPM-VERSION-OLDER", transport="ssh", scope="pair", tags=("ssh", "tpm", "swtpm", "version"),
       concerns=_has_emulated,
       hint="upgrade swtpm/libtpms on the destination: TPM state written by a newer libtpms may not load "
            "in an older one")
def swtpm_version_older(ctx: CheckContext) -> Results:
    """swtpm and libtpms on the destination are not older than on the source."""
    src, dst = _runner(ctx, "src"), _runner(ctx, "dst")
    if src is None or dst is None:
        return skipped(NO_SSH, ctx.dst_uri)
    if not _any_emulated(ctx):
        return passed("no domain has an emulated TPM", ctx.dst_uri)
    out: list[Result] = []
    for component, probe in (("swtpm", _swtpm_version), ("libtpms", _libtpms_version)):
        s, d = probe(src), probe(dst)
        if s is None or d is None:
            side = " and ".join(h for h, v in ((src.host, s), (dst.host, d)) if v is None)
            out.append(skipped(f"{component} version unknown on {side}", ctx.dst_uri))
        elif older(d, s):
            out.append(failed(f"{component} {version_text(d)} on {dst.host} is older than "
                              f"{version_text(s)} on {src.host}", ctx.dst_uri))
        else:
            out.append(passed(f"{component} {version_text(s)} → {version_text(d)}", ctx.dst_uri))
    return out


def _swtpm_version(runner) -> tuple[int, ...] | None:
    r = runner.run("swtpm --version")
    return parse_version(r.stdout) if r.ok else None


def _libtpms_version(runner) -> tuple[int, ...] | None:
    # NOTE: swtpm 0.7 does not report libtpms' version; ask the package manager (Debian, then RPM).
    r = runner.run("dpkg-query -W -f '${{Version}}\\n' libtpms0 2>/dev/null"
                   " || rpm -q --qf '%{{VERSION}}\\n' libtpms 2>/dev/null")
    return parse_version(r.stdout) if r.ok else None


@check("TPM-STATE-SPACE", transport="ssh", scope="domain", tags=("ssh", "tpm", "storage"),
       hint="free space on the destination filesystem holding /var/lib/libvirt/swtpm (the incoming TPM "
            "state is written there)")
def tpm_state_space(ctx: CheckContext, t: Target) -> Results:
    """Enough free space where the TPM state will land on the destination."""
    if not _emulated(t):
        return passed("the domain has no emulated TPM")
    runner = _runner(ctx, "dst")
    if runner is None:
        return skipped(NO_SSH)
    state_dir = state_dir_of(t.facts)
    where = _existing_dir(ctx, runner, state_dir)
    r = ctx.host_facts.probe("dst", runner, "df -Pk {}", where)
    if not r.ok:
        return failed(f"df -Pk {where} on {runner.host} failed: {_first_line(r.stderr) or r.exit_status}")
    try:
        df = parse_df(r.stdout)
    except ValueError as e:
        return failed(f"cannot read df output from {runner.host}: {e}")
    msg = (f"{df.avail_kib / 1024:.1f} MiB free on {df.mount} ({df.filesystem}) for {state_dir}; "
           f"need ≥ {MIN_TPM_STATE_KIB // 1024} MiB")
    return failed(msg) if df.avail_kib < MIN_TPM_STATE_KIB else passed(msg)


@check("SECRET-AT-REST-UNENCRYPTED", severity="warning", transport="ssh", scope="domain",
       tags=("ssh", "secrets"),
       hint="libvirt < 12.1 (and ≥ 12.1 without its encryption key) keeps a persistent secret's value as plain "
            "base64 in /etc/libvirt/secrets, beside "
            "the TPM state it protects: use --dest-ephemeral yes (value held in memory only; it must then be "
            "provisioned again after a libvirtd restart) or upgrade libvirt on the destination")
def secret_at_rest(ctx: CheckContext, t: Target) -> Results:
    """A persistent secret would be stored unencrypted on the destination (libvirt < 12.1, or ≥ 12.1
    without an encryption key)."""
    runner = _runner(ctx, "dst")
    if runner is None:
        return skipped(NO_SSH)
    version = ctx.host_facts.lib_version(ctx.destination)
    if version >= SECRETS_ENCRYPTED_SINCE:
        conf = ctx.host_facts.probe("dst", runner, "cat {}", SECRET_CONF)
        encrypt, key = encryption_settings(conf.stdout if conf.ok else "")
        if encrypts_at_rest(version, encrypt, ctx.host_facts.probe("dst", runner, "test -f {}", key).ok):
            return passed(f"libvirt {version_str(version)} on the destination encrypts secrets at rest (key {key})")
    why = (f"libvirt {version_str(version)} < {version_str(SECRETS_ENCRYPTED_SINCE)}"
           if version < SECRETS_ENCRYPTED_SINCE else
           f"libvirt {version_str(version)} without an encryption key ({SECRET_CONF}: encrypt_data / "
           "secrets_encryption_key)")
    out: list[Result] = []
    for p in ctx.secret_plans(t):
        if p.uuid is None:
            continue
        info = ctx.destination.secret_info(p.uuid)
        if info is not None:
            persistent, how = not info.ephemeral, "is"
        else:
            src_info = ctx.source.secret_info(p.uuid) if ctx.source is not None else None
            if src_info is None:
                continue
            persistent, how = not wanted_flags(src_info, ctx.secret_policy)[1], "would be"
        if not persistent:
            continue
        path = f"{SECRETS_DIR}/{p.uuid}.base64"
        if how == "is" and runner.run("test -f {}", path).ok:
            where = f"is stored as plain base64 in {path}"
        else:
            where = f"{how} stored as plain base64 under {SECRETS_DIR}"
        out.append(failed(f"secret {p.uuid} ({p.ref.kind}) {where} on {runner.host} ({why})"))
    return out or passed(f"no persistent secret of this domain at rest on {runner.host}")
