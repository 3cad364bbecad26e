"""core.domain.document: a domain's definitions parsed once — facts, secret references and lease from one parse."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from coordinator.core.domain.document import read_document
from coordinator.core.domain.facts import parse_domain_facts
from coordinator.core.domain.secret_refs import union_refs
from coordinator.core.errors import BadInput
from coordinator.core.lease_rules import Lease, lease_in_domain

NS = "https://migcoord.invalid/lease/1"
U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
LEASE = (f"<migcoord:lease xmlns:migcoord='{NS}' run='r1' host='ctl' pid='42' pid-start='7' started='1000' "
         "expires='2000' dest='qemu+tcp://dst/system'/>")


def dom(name: str = "vm1", mem: int = 1024, secret: str = U1, metadata: str = "", cpu: str = "") -> str:
    return (f"<domain type='kvm'><name>{name}</name><uuid>{U2}</uuid><memory>{mem}</memory>"
            f"{f'<metadata>{metadata}</metadata>' if metadata else ''}{cpu}"
            "<devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'>"
            f"<encryption secret='{secret}'/><source type='dir' path='/shared/tpm'/></backend></tpm></devices>"
            "</domain>")


def test_read_gives_what_the_separate_parsers_give():
    live, inactive = dom(mem=2048, metadata=LEASE, cpu="<cpu mode='host-model'/>"), dom(secret=U2)
    d = read_document([live, inactive])
    assert d.xmls == (live, inactive)
    assert d.facts == parse_domain_facts(live) and d.defined == parse_domain_facts(inactive)
    assert list(d.refs) == union_refs(live, inactive)
    assert d.lease == Lease("r1", "ctl", 42, 1000.0, 2000.0, "qemu+tcp://dst/system", 7)
    assert d.name == "vm1" and d.facts.tpm_state == (("dir", "/shared/tpm"),)


def test_one_definition_is_both_and_has_no_lease_without_metadata():
    d = read_document([dom()])
    assert d.facts is d.defined and d.lease is None


def test_each_definition_is_parsed_once(monkeypatch):
    parsed: list[str] = []
    real = ET.fromstring

    def counting(text, parser=None):
        parsed.append(text)
        return real(text, parser)

    monkeypatch.setattr(ET, "fromstring", counting)
    live, inactive = dom(mem=2048, metadata=LEASE), dom()
    read_document([live, inactive])
    assert parsed == [live, inactive]


@pytest.mark.parametrize("xmls", [["<domain"], ["<network/>"], [dom(), "<domain><memory unit='parsec'>1</memory>"
                                                                         "</domain>"]])
def test_bad_documents_are_bad_input(xmls):
    with pytest.raises(BadInput):
        read_document(xmls)


@pytest.mark.parametrize("metadata, found", [
    (LEASE, True),
    (LEASE.replace("migcoord:", "m:").replace("xmlns:migcoord", "xmlns:m"), True),  # any prefix
    (f"<other xmlns='urn:x'/>{LEASE}", True),                            # first child in OUR namespace
    (f"<migcoord:note xmlns:migcoord='{NS}'/>{LEASE}", False),            # ... which GetMetadata returns
    (LEASE.replace(NS, "urn:someone-else"), False),
    ("", False),
])
def test_lease_in_domain_is_what_get_metadata_returns(metadata, found):
    root = ET.fromstring(dom(metadata=metadata))
    assert (lease_in_domain(root) is not None) is found
