"""``secrets audit``: gather what each host says about its secrets and domains, then ``core.secret_audit``
decides. Strictly read-only: only listings, XML descriptions and (where the transport rule allows it)
``virSecretGetValue`` of readable secrets, each value turned into this run's fingerprint at once and wiped
(``steps.provision.fingerprint``); nothing is defined, set or undefined anywhere."""
from __future__ import annotations

import contextlib
import secrets as pysecrets
from collections.abc import Callable, Sequence

from coordinator.core.domain.secret_refs import union_refs
from coordinator.core.errors import BadInput, Blocked, SecretUnavailable
from coordinator.core.secret_audit import NO_VALUE, AuditedDomain, AuditedSecret, AuditReport, AuditedHost, audit
from coordinator.core.uris import distinct_hosts
from coordinator.flows.boundary import libvirt_errors
from coordinator.flows.validate import before_auditing
from coordinator.steps import nodump
from coordinator.steps.provision import fingerprint, wipe
from coordinator.steps.transport import check_transport
from coordinator.virt.host import Host

PRIVATE = "private: libvirt does not give its value out"


def audit_secrets(uris: Sequence[str], *, allow_plaintext: bool = False,
                  connect: Callable[[str], Host] = Host.open) -> AuditReport:
    """Audit ``uris`` (libvirt URIs, validated before the first connection). Raises BadInput (exit 2) for
    bad input or two spellings of one host, HostUnreachable/HostError (exit 1) when a host cannot be read."""
    uris = list(uris)
    before_auditing(uris)
    run_key = pysecrets.token_bytes(32)  # this run's fingerprints mean nothing after it
    with libvirt_errors("secrets audit: "), contextlib.ExitStack() as stack:
        hosts = [stack.enter_context(connect(u)) for u in uris]
        distinct_hosts({h.uri: h.host_uuid() for h in hosts})
        nodump.acquire()  # NOTE: no core dump while a value is in memory
        try:
            facts = [host_facts(h, run_key, allow_plaintext=allow_plaintext) for h in hosts]
        finally:
            nodump.release()
    return audit(facts)


def host_facts(host: Host, run_key: bytes, *, allow_plaintext: bool) -> AuditedHost:
    try:
        check_transport(host.uri, allow_plaintext=allow_plaintext)
        unread = None
    except Blocked as e:  # the transport rule: no value is read over this connection
        unread = f"not read: {e.message} (--allow-plaintext-secrets reads it)"
    secrets = tuple(_secret(host, info.uuid, info.usage_type, info.usage_id, info.ephemeral, info.private,
                            run_key, unread) for info in host.secret_infos())
    domains = []
    for guest, active, persistent in host.guests_by_state():
        try:
            refs = union_refs(*guest.definitions(active=active, persistent=persistent))
        except BadInput as e:
            raise BadInput(f"domain {guest.name} on {host.uri}: {e.message}", hint=e.hint) from None
        domains.append(AuditedDomain(guest.name, persistent=persistent, active=active, refs=tuple(refs)))
    return AuditedHost(host.uri, secrets, tuple(domains), host_uuid=host.host_uuid(), values_read=unread is None,
                     values_unread_reason=unread)


def _secret(host: Host, uuid: str, usage_type: str, usage_id: str | None, ephemeral: bool, private: bool,
            run_key: bytes, unread: str | None) -> AuditedSecret:
    def made(fp: str | None = None, unknown: str | None = None) -> AuditedSecret:
        return AuditedSecret(uuid, usage_type, usage_id, ephemeral, private, fingerprint=fp, unknown=unknown)

    if private:
        return made(unknown=PRIVATE)
    if unread is not None:
        return made(unknown=unread)
    try:
        value = host.secret_value_if_set(uuid)
    except SecretUnavailable as e:  # e.g. undefined meanwhile, or refused
        return made(unknown=e.message)
    if value is None:
        return made(fp=NO_VALUE)
    try:
        return made(fp=fingerprint(run_key, value))
    finally:
        wipe(value)
