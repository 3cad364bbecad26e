"""coordinator.core.secret_xml: a secret's XML (formatsecret) → SecretInfo, and the copy with our flags."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from coordinator.core.errors import BadInput
from coordinator.core.secret_xml import parse_secret_xml, with_flags

U = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"


def secret_xml(usage: str, ephemeral: str = "no", private: str = "no", uuid: str = U) -> str:
    return (f"<secret ephemeral='{ephemeral}' private='{private}'><uuid>{uuid}</uuid>"
            f"{usage}</secret>")


@pytest.mark.parametrize("xml, usage_type, usage_id, ephemeral, private", [
    (secret_xml("<usage type='vtpm'><name>VTPM_example</name></usage>", private="yes"),
     "vtpm", "VTPM_example", False, True),
    (secret_xml("<usage type='volume'><volume>/var/lib/libvirt/images/e.qcow2</volume></usage>"),
     "volume", "/var/lib/libvirt/images/e.qcow2", False, False),
    (secret_xml("<usage type='ceph'><name>client.libvirt secret</name></usage>", ephemeral="yes"),
     "ceph", "client.libvirt secret", True, False),
    (secret_xml("<usage type='iscsi'><target>libvirtiscsi</target></usage>", "yes", "yes"),
     "iscsi", "libvirtiscsi", True, True),
    (secret_xml("<usage type='tls'><name>TLS_example</name></usage>"), "tls", "TLS_example", False, False),
    (secret_xml(""), "none", None, False, False),
], ids=["vtpm", "volume", "ceph", "iscsi", "tls", "no-usage"])
def test_parse_secret_xml(xml, usage_type, usage_id, ephemeral, private):
    info = parse_secret_xml(xml)
    assert (info.uuid, info.usage_type, info.usage_id) == (U, usage_type, usage_id)
    assert (info.ephemeral, info.private) == (ephemeral, private)
    assert info.xml == xml


def test_parse_secret_xml_lowercases_uuid():
    info = parse_secret_xml(secret_xml("<usage type='vtpm'><name>v</name></usage>", uuid=U.upper()))
    assert info.uuid == U


def test_parse_secret_xml_without_flags_means_no():
    info = parse_secret_xml(f"<secret><uuid>{U}</uuid><usage type='vtpm'><name>v</name></usage></secret>")
    assert (info.ephemeral, info.private) == (False, False)


@pytest.mark.parametrize("xml", ["<secret", "", "<secret><uuid>x</uuid>"])
def test_parse_secret_xml_rejects_malformed(xml):
    with pytest.raises(BadInput, match="malformed secret XML"):
        parse_secret_xml(xml)


@pytest.mark.parametrize("ephemeral, private, want_private, want_ephemeral", [
    ("no", "no", True, False),
    ("yes", "yes", False, False),
    ("no", "yes", True, True),
    ("yes", "no", False, True),
])
def test_with_flags_sets_only_the_flags(ephemeral, private, want_private, want_ephemeral):
    src = parse_secret_xml(secret_xml("<usage type='vtpm'><name>VTPM_x</name></usage>", ephemeral, private))
    out = with_flags(src, want_private, want_ephemeral)
    again = parse_secret_xml(out)
    assert (again.private, again.ephemeral) == (want_private, want_ephemeral)
    assert (again.uuid, again.usage_type, again.usage_id) == (src.uuid, src.usage_type, src.usage_id)
    assert ET.fromstring(out).get("private") == ("yes" if want_private else "no")
