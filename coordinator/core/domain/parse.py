"""Pure: the one place that parses a domain document and unwraps ``<domstatus>``."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ..errors import BadInput

HINT_XML = "pass the XML exactly as libvirt returns it (virsh dumpxml / virDomainGetXMLDesc)"


def domain_root(xml: str) -> ET.Element:
    """The <domain> element; for status XML the inner one, so privateData is never read."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise BadInput(f"domain XML is malformed: {exc}", hint=HINT_XML) from None
    if root.tag == "domstatus":
        inner = root.find("domain")
        if inner is None:
            raise BadInput("domain XML is malformed: <domstatus> holds no <domain>", hint=HINT_XML)
        return inner
    if root.tag != "domain":
        raise BadInput(f"domain XML is malformed: root element is <{root.tag}>, "
                       "expected <domain> or <domstatus>", hint=HINT_XML)
    return root
