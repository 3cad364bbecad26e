"""Pure: a libvirt secret's XML (formatsecret) ↔ ``SecretInfo``, and the copy we define on a destination."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from .errors import BadInput
from .model import SecretInfo

# XML element under <usage> that carries the usage id, per usage type (formatsecret).
USAGE_ID_ELEMENT = {"volume": "volume", "ceph": "name", "iscsi": "target", "tls": "name", "vtpm": "name"}


def parse_secret_xml(xml: str) -> SecretInfo:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise BadInput(f"malformed secret XML: {e}") from None
    usage = root.find("usage")
    utype = usage.get("type", "none") if usage is not None else "none"
    uid = usage.findtext(USAGE_ID_ELEMENT.get(utype, "name")) if usage is not None else None
    return SecretInfo(uuid=(root.findtext("uuid") or "").lower(), usage_type=utype, usage_id=uid,
                      ephemeral=root.get("ephemeral") == "yes", private=root.get("private") == "yes",
                      xml=xml)


def with_flags(info: SecretInfo, private: bool, ephemeral: bool) -> str:
    """The source secret's XML with the given destination flags."""
    root = ET.fromstring(info.xml)
    root.set("private", "yes" if private else "no")
    root.set("ephemeral", "yes" if ephemeral else "no")
    return ET.tostring(root, encoding="unicode")
