"""Read-only planning: what each secret a domain needs would take on the destination."""
from __future__ import annotations

from typing import Callable

from . import domxml
from .errors import BadInput
from .hypervisor import Host, check_uri
from .keys import KeyRing
from .model import SecretPlan
from .secrets import SecretPolicy, SecretProvisioner, check_transport


def plan_domain_secrets(domain: str, source_uri: str, dest_uri: str, *, keyring: KeyRing | None = None,
                        policy: SecretPolicy = SecretPolicy(),
                        connect: Callable[[str], Host] = Host.open) -> list[SecretPlan]:
    """The secret plan ``migrate`` would carry out, without changing anything anywhere."""
    check_uri(source_uri)
    check_uri(dest_uri)
    check_transport(source_uri, dest_uri, allow_plaintext=policy.allow_plaintext)
    with connect(source_uri) as src, connect(dest_uri) as dst:
        guest = src.find_guest(domain)
        if guest is None:
            raise BadInput(f"domain {domain!r} not found on {source_uri}")
        xmls = guest.definitions()
        prov = SecretProvisioner(src, dst, keyring=keyring or KeyRing(), policy=policy)
        return prov.plan(domxml.union_refs(*xmls))
