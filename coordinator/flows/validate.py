"""Everything an operation's input must pass before the first connection (house rule 15).

One function for every flow (``migrate``, ``evacuate`` and its dry run, the secrets plan), so bad
input never costs a round trip and never leaves state, whichever entry point a caller uses."""
from __future__ import annotations

from collections.abc import Sequence

from checks.preflight import validate_selection
from coordinator.core.errors import BadInput
from coordinator.core.ids import check_domain_ident
from coordinator.core.params import migration_flags, migration_params
from coordinator.core.uris import check_endpoints, check_uri
from coordinator.steps.parameters import MigrateOptions


def before_connecting(source_uri: str, dest_uris: Sequence[str], options: MigrateOptions,
                      domains: Sequence[str] = ()) -> None:
    """Raise BadInput for a bad URI or URI pair, domain identifier, check id, or migration policy."""
    check_endpoints(source_uri, dest_uris)
    for d in domains:
        check_domain_ident(d)
    validate_selection(options.skip, options.waive)
    migration_flags(options.policy)
    migration_params(options.policy)
    options.timeouts.for_memory(0)


def before_auditing(uris: Sequence[str]) -> None:
    """``secrets audit``: at least one host, each a libvirt URI (``core.uris.check_uri``, as every command
    checks its URIs), none given twice. BadInput, before any connection."""
    if not uris:
        raise BadInput("no host given", hint="give one or more libvirt URIs or host aliases")
    for u in uris:
        check_uri(u)
    if len(set(uris)) != len(uris):
        dup = next(u for u in uris if uris.count(u) > 1)
        raise BadInput(f"host {dup} is given twice", hint="give each host once")
