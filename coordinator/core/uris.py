"""Pure facts about libvirt URIs: is it one, which transport, which host, is the channel protected.

The one place that parses a libvirt URI. The transport rule (a secret value never crosses an
unprotected remote channel without ``--allow-plaintext-secrets``) is decided here and only here;
``steps.provision.SecretProvisioner`` is where every value read or write asks it.
"""
from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import BadInput, Blocked

# libvirt transports whose URI port (and user) are the SSH ones.
_SSH_TRANSPORTS = {"ssh", "libssh", "libssh2"}
# Transports that encrypt and authenticate the stream when nothing in the URI weakens them.
_PROTECTED = {"tls"} | _SSH_TRANSPORTS
_URI_RE = re.compile(r"^qemu(\+[a-z0-9]+)?://[^/\s]*/(system|session)(\?\S*)?$")
_LOCAL_NAMES = {"localhost", "localhost.", "localhost.localdomain", "localhost6", "ip6-localhost",
                "ip6-loopback"}


def check_uri(uri: str) -> str:
    """Reject what cannot be a QEMU libvirt URI before any connection attempt."""
    if not isinstance(uri, str) or not _URI_RE.match(uri) or any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise BadInput(f"not a libvirt QEMU URI: {uri!r}",
                       hint="use e.g. qemu:///system, qemu+ssh://HOST/system, qemu+tls://HOST/system")
    uri_facts(uri)  # the host part must parse too (e.g. an unclosed IPv6 bracket)
    if _parse(uri).path not in ("/system", "/session"):  # e.g. qemu+tcp://h?x/system: no path for libvirt
        raise BadInput(f"not a libvirt QEMU URI: {uri!r} (libvirt reads no /system or /session path in it)",
                       hint="use e.g. qemu:///system, qemu+ssh://HOST/system, qemu+tls://HOST/system")
    return uri


# -- virURIParse: libxml2's xmlParseURI (uri.c, 2.9.14 and 2.12-2.14 alike) -------------------------
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_USERINFO = _UNRESERVED | _SUB_DELIMS | {":"}
_REG_NAME = _UNRESERVED | _SUB_DELIMS
_PCHAR = _UNRESERVED | _SUB_DELIMS | {":", "@"}
_QUERY = _PCHAR | {"/", "?"}
_FRAGMENT = _QUERY | {"[", "]"}
_INT_MAX = 2**31 - 1


def _scan(s: str, i: int, allowed: frozenset[str] | set[str]) -> int:
    """libxml2's ``while (ISA_...(cur) || ISA_PCT_ENCODED(cur)) NEXT(cur)``: a ``%`` counts only
    followed by two hex digits."""
    while i < len(s):
        if s[i] == "%":
            if i + 2 < len(s) and s[i + 1] in _HEXDIGITS and s[i + 2] in _HEXDIGITS:
                i += 3
                continue
            break
        if s[i] not in allowed:
            break
        i += 1
    return i


def _unescape(text: str) -> str:
    """xmlURIUnescapeString, then the C string's end: ``%XX`` → that byte (no ``+`` → space), and
    a decoded NUL ends the string (libvirt g_strdup()s it). Bytes that are not UTF-8 stay as
    surrogates, so they never compare equal to a name."""
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) and chr(raw[i + 1]) in _HEXDIGITS and chr(raw[i + 2]) in _HEXDIGITS:
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class _Parsed:
    scheme: str
    user: str | None
    server_raw: str      # as written (with brackets, escapes)
    server: str | None   # decoded, IPv6 brackets stripped (virStringStripIPv6Brackets), as libvirt uses it
    port: int            # 0: none given
    path: str | None
    query: str | None    # raw: virURIParseParams splits and decodes it


def _parse_authority(uri: str, i: int) -> tuple[str | None, str, int, int]:
    """xmlParse3986Authority from ``i``: (user, server as written, port or 0, where it ends)."""
    user = None
    j = _scan(uri, i, _USERINFO)
    if j < len(uri) and uri[j] == "@":
        user, i = _unescape(uri[i:j]), j + 1
    if i < len(uri) and uri[i] == "[":
        j = uri.find("]", i)
        if j < 0:
            raise ValueError("an unclosed '[' in the host")
        j += 1
    else:
        j = _scan(uri, i, _REG_NAME)
    server_raw, i, port = uri[i:j], j, 0
    if i < len(uri) and uri[i] == ":":
        j = i + 1
        while j < len(uri) and uri[j] in "0123456789":
            j += 1
        if j == i + 1:
            raise ValueError("a ':' without a port number")
        port = int(uri[i + 1:j])
        if port > _INT_MAX:
            raise ValueError("the port is out of range")
        i = j
    return user, server_raw, port, i


def _parse(uri: str) -> _Parsed:
    """virURIParse (libvirt 9.0 and 11.3): xmlParseURI's absolute-URI grammar, field by field.
    ValueError says what libvirt would refuse."""
    m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*", uri)
    if not m or uri[m.end():m.end() + 3] != "://":
        raise ValueError("no scheme://")
    user, server_raw, port, i = _parse_authority(uri, m.end() + 3)
    server = _unescape(server_raw) if server_raw else None
    if server and server.startswith("[") and server.endswith("]") and ":" in server:
        server = server[1:-1]  # virStringStripIPv6Brackets
    j = i
    while j < len(uri) and uri[j] == "/":
        j = _scan(uri, j + 1, _PCHAR)
    path = _unescape(uri[i:j]) if j > i else None
    i, query = j, None
    if i < len(uri) and uri[i] == "?":
        j = _scan(uri, i + 1, _QUERY)
        query, i = uri[i + 1:j], j
    if i < len(uri) and uri[i] == "#":
        i = _scan(uri, i + 1, _FRAGMENT)
    if i != len(uri):
        raise ValueError(f"{uri[i]!r} is not allowed there")
    return _Parsed(scheme=m.group(0), user=user, server_raw=server_raw, server=server,
                   port=port if server else 0,  # NOTE: virURIParse: no server, no port
                   path=path, query=query)


def _split_params(query: str, separators: str) -> list[tuple[str, str]]:
    """virURIParseParams' name/value rules over sections ending at ``separators``."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(query):
        if separators == "&;":  # libvirt: the next '&', else (none left at all) the next ';'
            end = query.find("&", i)
            if end < 0:
                end = query.find(";", i)
        else:                   # the other reading: whichever separator comes first
            ends = [e for e in (query.find(c, i) for c in separators) if e >= 0]
            end = min(ends) if ends else -1
        if end < 0:
            end = len(query)
        section = query[i:end]
        i = end + 1
        if not section:
            continue
        name, eq, value = section.partition("=")
        if eq and not name:  # "=value" is ignored (as CGI.pm does)
            continue
        out.append((_unescape(name), _unescape(value)))
    return out


def libvirt_params(query: str) -> list[tuple[str, str]]:
    """The URI parameters exactly as libvirt's virURIParseParams (9.0, 11.3) makes them from the raw
    query: sections end at the next ``&`` — or, only when no ``&`` is left, at the next ``;``;
    ``name`` alone is ``name=""``; ``=value`` is dropped; both sides percent-decoded, cut at NUL."""
    return _split_params(query, "&;")


def _ascii_lower(text: str) -> str:
    """g_ascii_strcasecmp's folding (STRCASEEQ): A-Z only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


_STRTOL = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+\Z")


def _libvirt_int(value: str) -> int | None:
    """virStrToLong_i(value, NULL, 10): strtol with the whole string used and an int's range; None
    where libvirt refuses the value."""
    if not _STRTOL.match(value):
        return None
    n = int(value.strip(" \t\n\v\f\r"))
    return n if -_INT_MAX - 1 <= n <= _INT_MAX else None


def _last(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """The value libvirt uses (EXTRACT_URI_ARG_*: the last occurrence wins)."""
    found = None
    for n, v in params:
        if _ascii_lower(n) == name:
            found = v
    return found


_LOCAL_NAME_PARAM = re.compile(r"qemu(\+unix)?:///(system|session)\Z")
_VERIFY_PARAMS = ("no_verify", "known_hosts_verify", "tls_priority", "command", "name")


def _weakening(transport: str, query: str | None) -> str | None:
    """The URI parameter that turns the channel's authentication off (libvirt's remote driver
    parameters, doRemoteOpenExtractURIArgs: names matched ASCII-case-insensitively): ``no_verify``
    (TLS certificate / SSH host key), ``known_hosts_verify=auto|ignore`` (libssh/libssh2),
    ``command`` (another program carries the stream), ``tls_priority`` (can enable NULL or
    anonymous ciphers), ``name`` (the daemon opens another URI, which may relay onward).

    Judged over libvirt's own reading of the query AND a reading that splits on both ``&`` and
    ``;``: where the two differ the URI is ambiguous, and either one weakening it refuses it.
    A value libvirt would refuse to parse counts as weakening (ambiguous), as does giving one of
    these twice (libvirt takes the last; a reader may take the first)."""
    if not query:
        return None
    exact = libvirt_params(query)
    seen: set[str] = set()
    for n, _ in exact:
        key = _ascii_lower(n)
        if key in _VERIFY_PARAMS and key in seen:
            return f"{key} given twice"
        seen.add(key)
    for name, value in exact + [p for p in _split_params(query, ";&") if p not in exact]:
        weak = _param_weakening(transport, _ascii_lower(name), value)
        if weak:
            return weak
    return None


def _param_weakening(transport: str, key: str, value: str) -> str | None:
    if key == "no_verify":
        n = _libvirt_int(value)
        if n is None:
            return f"no_verify={value} (not an integer libvirt accepts)"
        return f"no_verify={value}" if n != 0 else None
    if key == "known_hosts_verify" and _ascii_lower(value) != "normal":
        return f"known_hosts_verify={value}"
    if key == "command":
        return "command=..."
    if key == "tls_priority" and transport == "tls":
        return "tls_priority=..."
    if key == "name" and not _LOCAL_NAME_PARAM.match(value):
        return "name=... (the daemon would open another URI)"
    return None


_NUMERIC = re.compile(r"[0-9a-fA-FxX.]+\Z")


def _numeric_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host denotes, in every spelling the resolver accepts as numeric
    (``127.1``, ``2130706433``, ``0x7f.0.0.1`` — inet_aton's forms), without any lookup. A zone id
    (``%``) is never numeric here: the caller decides what it means."""
    if "%" in host:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_this_machine(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback or addr.is_unspecified


def exactly_loopback(host: str | None) -> bool:
    """Certainly this machine, as written: no host, ``localhost``, or a numeric loopback/unspecified
    address. Names other than ``localhost`` are not trusted (DNS could send them anywhere), and
    neither is anything percent-encoded, with a zone id or a trailing dot (ambiguous: refused)."""
    if not host or host == "localhost":
        return True
    addr = _numeric_address(host)
    return addr is not None and _is_this_machine(addr)


@dataclass(frozen=True)
class UriFacts:
    uri: str
    driver: str
    transport: str  # "unix" (local), "tls", "tcp", "ssh", ...
    host: str | None  # as libvirt uses it: percent-decoded, IPv6 brackets stripped (lower case)
    user: str | None = None
    port: int | None = None
    weakened_by: str | None = None  # e.g. "no_verify=1": the URI switches the channel's protection off
    host_as_written: str | None = None  # the URI's own spelling, when it differs (percent-encoded)
    params: tuple[tuple[str, str], ...] = ()  # libvirt_params of the query

    @property
    def is_loopback(self) -> bool:
        """Certainly this machine (``exactly_loopback``) and written without any escape."""
        return self.host_as_written is None and exactly_loopback(self.host)

    @property
    def may_be_this_machine(self) -> bool:
        """Whoever resolves it may reach itself: a local transport, or any loopback spelling —
        decoded, zone id and trailing dots dropped — generous on purpose (used to refuse, never to
        exempt)."""
        if self.transport == "unix" or self.is_loopback:
            return True
        h = (self.host or "").split("%", 1)[0].rstrip(".")
        if h in _LOCAL_NAMES or h.endswith(".localhost"):
            return True
        addr = _numeric_address(h)
        return addr is not None and _is_this_machine(addr)

    @property
    def uses_openssh(self) -> bool:
        """libvirt runs the OpenSSH client (``ssh``) for this URI, so its config applies."""
        return self.transport == "ssh" and _last(self.params, "command") is None

    def judged(self, local: bool) -> str | None:
        """``risk`` with the locality decided by the caller (the OpenSSH client may send a loopback
        name elsewhere: ``ssh_client_risk``)."""
        if self.transport == "ext":
            return "an external command carries the connection (qemu+ext)"
        if self.weakened_by == "command=...":  # another program carries it: it may go anywhere
            return f"{self.weakened_by} hands the connection to another program"
        if local:  # NOTE: never leaves this machine
            return None
        if self.transport not in _PROTECTED:
            return f"{self.transport} is plaintext"
        if self.weakened_by:
            return f"{self.weakened_by} switches off the {self.transport} peer verification"
        return None

    @property
    def risk(self) -> str | None:
        """Why secret bytes sent over this connection would be exposed, or None when they would not
        (the URI alone: for an OpenSSH transport, ``transport_risk`` adds the client's config)."""
        return self.judged(self.is_loopback or self.transport == "unix")


def uri_facts(uri: str) -> UriFacts:
    """What libvirt makes of ``uri`` (``virURIParse`` + ``virURIParseParams``, libvirt 9.0/11.3 with
    libxml2 2.9.14/2.12-2.14). BadInput for what libvirt could not parse or connect to."""
    if not isinstance(uri, str) or any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise BadInput(f"not a libvirt URI: {uri!r}", hint="e.g. qemu+ssh://HOST/system")
    try:
        p = _parse(uri)
    except ValueError as e:
        raise BadInput(f"not a libvirt URI: {uri!r} (libvirt cannot parse it: {e})",
                       hint="e.g. qemu+tcp://[fd00::5]:16509/system") from None
    if p.port > 65535:
        raise BadInput(f"not a libvirt URI: {uri!r} (malformed host or port)",
                       hint="e.g. qemu+tcp://[fd00::5]:16509/system")
    host = p.server.lower() if p.server else None
    if p.server_raw.startswith("["):
        literal = (host or "").split("%", 1)[0]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise BadInput(f"not a libvirt URI: {uri!r} (malformed host or port: {p.server_raw} is not an "
                           "IPv6 address)", hint="e.g. qemu+tcp://[fd00::5]:16509/system") from None
    driver, _, transport = p.scheme.partition("+")
    if not transport:
        # NOTE: libvirt defaults to TLS for a remote host and to the UNIX socket without one.
        transport = "tls" if host else "unix"
    written = p.server_raw.lower() if p.server_raw else None
    if written and written.startswith("[") and written.endswith("]"):
        written = written[1:-1]
    return UriFacts(uri=uri, driver=driver, transport=transport, host=host, user=p.user or None,
                    port=p.port or None, weakened_by=_weakening(transport, p.query),
                    host_as_written=written if written != host else None,
                    params=tuple(libvirt_params(p.query or "")),
                    )


def ssh_target(uri: str) -> tuple[str, str | None, int | None] | None:
    """(host, user, port) to reach a libvirt URI's host over SSH; None for a local URI.

    The user and port in the URI are SSH's only for ssh transports (``qemu+ssh://u@h:2222/system``);
    for ``qemu+tcp://h:16509`` the port is libvirt's, so SSH's own defaults apply."""
    f = uri_facts(uri)
    if not f.host:
        return None
    if f.transport in _SSH_TRANSPORTS:
        return f.host, f.user, f.port
    return f.host, None, None


def runs_commands(uri: str, ssh_configured: bool) -> bool:
    """Whether commands can be run on ``uri``'s host: here for a local URI, over SSH for a remote one
    only when SSH is configured (``ssh.runner.runner_for`` builds the runner; the checks ask this first
    so that a run without SSH never loads the SSH seam)."""
    return ssh_target(uri) is None or ssh_configured


def same_host_message(src_uri: str, dst_uri: str, src_host_uuid: str, dst_host_uuid: str) -> str | None:
    """Why these two connections are one host (equal host UUIDs: libvirt refuses such a
    migration), or None. Shared by the HOST-SAME check and ``migrate``'s early refusal."""
    if src_host_uuid != dst_host_uuid:
        return None
    return f"{dst_uri} is the same host as {src_uri} (host UUID {src_host_uuid})"


def check_endpoints(source_uri: str, dest_uris: Sequence[str]) -> None:
    """Every URI is one; no destination is the source or given twice; and a destination that names
    this machine (no host, ``localhost``, 127.x, ...) is refused when the source is remote: with
    peer-to-peer migration the *source daemon* resolves the destination URI — it would reach
    itself — while this machine would provision the secrets on its own libvirtd. (Both on this
    machine, as in the lab, is one consistent view and fine.) BadInput, before any connection."""
    check_uri(source_uri)
    if not dest_uris:
        raise BadInput("no destination given", hint="give at least one --to URI")
    src = uri_facts(source_uri)
    for u in dest_uris:
        check_uri(u)
        if u == source_uri:
            raise BadInput(f"destination {u} is the source", hint="give a different --to")
        if uri_facts(u).may_be_this_machine and not src.may_be_this_machine:
            raise BadInput(f"destination {u} names this machine, but the source {source_uri} is remote: "
                           "its daemon would resolve the destination as itself",
                           hint="give the destination's real host name or address")
    if len(set(dest_uris)) != len(dest_uris):
        raise BadInput("a destination is given twice")


def distinct_hosts(host_uuids: dict[str, str]) -> None:
    """URI → host UUID after connecting: two spellings of one host (``h`` and ``h:16509``) are one
    host and would double its capacity and concurrency limits; refuse them (BadInput)."""
    seen: dict[str, str] = {}
    for uri, hu in host_uuids.items():
        if hu in seen:
            raise BadInput(f"{uri} and {seen[hu]} are the same host (host UUID {hu})",
                           hint="give each host once")
        seen[hu] = uri


def ssh_client_args(f: UriFacts) -> tuple[str, ...]:
    """The options and host libvirt hands the OpenSSH client for ``f`` (virNetSocketNewConnectSSH,
    libvirt 9.0 and 11.3: ``ssh [-p PORT] [-l USER] [-i KEYFILE] -T -e none [-o BatchMode=yes]
    [-o StrictHostKeyChecking=no] -- HOST COMMAND``), without the binary and the remote command:
    what ``ssh -G`` must be given to resolve the same settings."""
    args: list[str] = []
    if f.port:
        args += ["-p", str(f.port)]
    if f.user:
        args += ["-l", f.user]
    keyfile = _last(f.params, "keyfile")
    if keyfile is not None:
        args += ["-i", keyfile]
    args += ["-T", "-e", "none"]
    no_tty = _libvirt_int(_last(f.params, "no_tty") or "0")
    if no_tty:
        args += ["-o", "BatchMode=yes"]
    no_verify = _libvirt_int(_last(f.params, "no_verify") or "0")
    if no_verify:
        args += ["-o", "StrictHostKeyChecking=no"]
    return (*args, "--", f.host or "localhost")


@dataclass(frozen=True)
class SshWeakness:
    """One OpenSSH client setting (as ``ssh -G`` resolves it) that leaves the host key unverified."""

    option: str    # as ssh_config(5) spells it, e.g. "StrictHostKeyChecking"
    value: str     # as ssh -G prints it
    why: str

    def describe(self, where: str | None = None) -> str:
        at = f" ({where})" if where else ""
        return f"the OpenSSH client config sets {self.option} {self.value}{at}: {self.why}"


def ssh_weakness(settings: Mapping[str, str]) -> SshWeakness | None:
    """Pure: which resolved OpenSSH client setting (``ssh -G`` output, keys in lower case) lets a
    host key go unverified. OpenSSH 9.2 prints StrictHostKeyChecking as true/false/ask/accept-new:
    ``false`` accepts any key, ``accept-new`` any key of a host not yet known; a user known-hosts
    list of nothing but /dev/null leaves, unless the setting is ``true``, every host unknown (to be
    accepted at a prompt). ProxyCommand/ProxyJump only carry the stream: the SSH session and its
    host key check stay end to end (they matter for ``ssh_client_risk``'s locality only)."""
    strict = settings.get("stricthostkeychecking", "ask").lower()
    if strict in ("false", "no", "off"):
        return SshWeakness("StrictHostKeyChecking", settings["stricthostkeychecking"],
                           "any host key is accepted")
    if strict == "accept-new":
        return SshWeakness("StrictHostKeyChecking", settings["stricthostkeychecking"],
                           "the key of a host not yet known is accepted unverified")
    files = settings.get("userknownhostsfile", "").split()
    if files and all(p == "/dev/null" for p in files) and strict not in ("true", "yes"):
        return SshWeakness("UserKnownHostsFile", settings["userknownhostsfile"],
                           "no host key is ever known, so each is accepted at a prompt")
    return None


def ssh_stays_local(f: UriFacts, settings: Mapping[str, str]) -> bool:
    """A loopback URI whose OpenSSH client really connects to this machine: the resolved HostName is
    loopback as written and no ProxyCommand/ProxyJump carries the stream elsewhere."""
    if not f.is_loopback:
        return False
    if any(settings.get(k, "none").lower() != "none" for k in ("proxycommand", "proxyjump")):
        return False
    return exactly_loopback(settings.get("hostname", f.host or "localhost").lower())


def ssh_client_risk(f: UriFacts, settings: Mapping[str, str]) -> tuple[str | None, SshWeakness | None]:
    """Pure: the risk of an OpenSSH-transport URI given what ``ssh -G`` resolved for it: the URI's
    own (with the locality the client really has), then the client config's weakness."""
    local = ssh_stays_local(f, settings)
    own = f.judged(local)
    if own or local:
        return own, None
    weak = ssh_weakness(settings)
    return (weak.describe() if weak else None), weak


SshClientJudge = Callable[[UriFacts], "str | None"]


def transport_risk(uri: str, ssh_client: SshClientJudge) -> str | None:
    """Why values over ``uri`` would be exposed: the URI's own reading, and for a transport where
    libvirt runs the OpenSSH client, ``ssh_client``'s reading of that client's config (the ssh
    seam's ``openssh.client_risk``: ``ssh -G``)."""
    f = uri_facts(uri)
    return ssh_client(f) if f.uses_openssh else f.risk


def check_transport(*uris: str, allow_plaintext: bool, ssh_client: SshClientJudge) -> None:
    """Refuse (Blocked) before any value is read when a connection carrying it is unprotected.
    Callers pass ``ssh_client`` (``steps.transport`` does: the one entry point the flows, the
    steps and the checks use)."""
    if allow_plaintext:
        return
    for uri in uris:
        risk = transport_risk(uri, ssh_client)
        if risk:
            raise Blocked(f"secret values would cross the network unencrypted or unauthenticated over {uri} ({risk})",
                          hint="use qemu+tls:// or qemu+ssh:// with verification on, "
                               "or pass --allow-plaintext-secrets",
                          check_id="SECRET-PLAINTEXT-TRANSPORT")


@functools.lru_cache(maxsize=64)  # NOTE: asked per secret plan (thousands in an evacuation plan)
def values_may_cross(*uris: str, allow_plaintext: bool, ssh_client: SshClientJudge) -> bool:
    """``check_transport`` as a predicate."""
    try:
        check_transport(*uris, allow_plaintext=allow_plaintext, ssh_client=ssh_client)
    except Blocked:
        return False
    return True
