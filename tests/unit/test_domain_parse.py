"""coordinator.core.domain.parse.domain_root: the one place a domain document is parsed and
``<domstatus>`` unwrapped."""
from __future__ import annotations

import pytest

from coordinator.core.domain.parse import domain_root
from coordinator.core.errors import BadInput

DOMAIN = "<domain type='kvm'><name>vm1</name></domain>"


@pytest.mark.parametrize("xml, name", [
    pytest.param(DOMAIN, "vm1", id="domain"),
    pytest.param(f"<domstatus state='running' pid='42'>{DOMAIN}<privateData><name>not-me</name>"
                 "</privateData></domstatus>", "vm1", id="domstatus"),
    pytest.param(f"<domstatus><privateData/>{DOMAIN}</domstatus>", "vm1", id="domstatus-domain-not-first"),
    pytest.param(f"<?xml version='1.0'?>\n<!-- c -->\n{DOMAIN}", "vm1", id="declaration-and-comment"),
])
def test_domain_root(xml, name):
    root = domain_root(xml)
    assert root.tag == "domain" and root.get("type") == "kvm"
    assert root.findtext("name") == name


@pytest.mark.parametrize("xml, fragment", [
    pytest.param("<domstatus><privateData/></domstatus>", "<domstatus> holds no <domain>",
                 id="domstatus-without-domain"),
    pytest.param("<domstatus/>", "<domstatus> holds no <domain>", id="empty-domstatus"),
    pytest.param("<network><name>n</name></network>", "root element is <network>", id="other-root"),
    pytest.param("<Domain/>", "root element is <Domain>", id="case-matters"),
    pytest.param(f"<DomStatus>{DOMAIN}</DomStatus>", "root element is <DomStatus>", id="case-matters-domstatus"),
    pytest.param("<domain><name>vm1</name>", "malformed", id="unclosed"),
    pytest.param("", "malformed", id="empty"),
    pytest.param("not xml", "malformed", id="text"),
])
def test_domain_root_rejects(xml, fragment):
    with pytest.raises(BadInput) as ei:
        domain_root(xml)
    assert fragment in str(ei.value)
    assert ei.value.hint and "dumpxml" in ei.value.hint
