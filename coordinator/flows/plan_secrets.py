"""Read-only planning: what each secret a domain needs would take on the destination."""
from __future__ import annotations

from collections.abc import Callable

from coordinator.core.domain.secret_refs import union_refs
from coordinator.core.model import SecretPlan
from coordinator.steps.transport import check_transport
from coordinator.flows.boundary import libvirt_errors
from coordinator.flows.validate import before_connecting
from coordinator.steps.parameters import MigrateOptions
from coordinator.steps.provision import SecretProvisioner
from coordinator.virt.host import Host


def plan_domain_secrets(domain: str, source_uri: str, dest_uri: str, options: MigrateOptions | None = None,
                        connect: Callable[[str], Host] = Host.open) -> list[SecretPlan]:
    """The secret plan ``migrate`` would carry out, without changing anything anywhere."""
    options = options or MigrateOptions()
    before_connecting(source_uri, [dest_uri], options, [domain])
    check_transport(source_uri, dest_uri, allow_plaintext=options.secret_policy.allow_plaintext)
    with libvirt_errors(), options.keyring.held(), connect(source_uri) as src, connect(dest_uri) as dst:
        xmls = src.require_guest(domain).definitions()
        prov = SecretProvisioner(src, dst, keyring=options.keyring, policy=options.secret_policy)
        return prov.plan(union_refs(*xmls))
