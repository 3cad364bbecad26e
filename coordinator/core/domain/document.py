"""Pure: a domain's definitions read once. Each XML document (the live and the inactive definition,
or the one of a shut-off domain) is parsed once per run, and everything planning and the checks read
from it comes from that one parse: the facts (``facts``), every secret it references (``secret_refs``)
and migcoord's ownership lease in its metadata (``lease``)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .parse import domain_root
from .facts import DomainFacts, facts_of
from .secret_refs import refs_of, union_of
from ..lease_rules import Lease, lease_in_domain
from ..model import SecretRef


@dataclass(frozen=True)
class DomainDoc:
    xmls: tuple[str, ...]        # as read: the live definition first when the domain runs
    facts: DomainFacts           # of the first definition (the live one of a running domain)
    defined: DomainFacts         # of the last one (the persistent definition when there are two)
    refs: tuple[SecretRef, ...]  # ``union_refs`` of all of them
    lease: Lease | None          # the migcoord lease in the first definition's metadata

    @property
    def name(self) -> str:
        return self.facts.name


def read_document(xmls: Sequence[str]) -> DomainDoc:
    """Parse each definition once. Raises ``BadInput`` as ``secret_refs`` and ``parse_domain_facts`` do."""
    if not xmls:
        raise ValueError("a domain has at least one definition")
    roots = [domain_root(x) for x in xmls]
    refs = union_of(refs_of(r) for r in roots)
    facts = [facts_of(r) for r in roots]
    return DomainDoc(xmls=tuple(xmls), facts=facts[0], defined=facts[-1], refs=tuple(refs),
                     lease=lease_in_domain(roots[0]))
