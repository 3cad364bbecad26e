"""coordinator.core.domain.secret_refs: every secret-reference location from libvirt's formatdomain /
formatstorageencryption docs, plus the things that look like secrets but are not."""
from __future__ import annotations

import pytest

from coordinator.core.domain.secret_refs import domain_identity, secret_refs, union_refs, unique_secret_refs
from coordinator.core.errors import BadInput
from coordinator.core.model import SecretKind, SecretRef

VTPM, ENC, AUTH = SecretKind.VTPM, SecretKind.DISK_ENCRYPTION, SecretKind.DISK_AUTH
HOST, NVRAM = SecretKind.HOSTDEV_AUTH, SecretKind.NVRAM_AUTH

U1 = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
U2 = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
U3 = "718c71bd-67b5-4a2b-87ec-a24e8ca200dc"
U4 = "3e2b1a4c-9d8f-4e7a-8b6c-5d4e3f2a1b0c"
U5 = "f52a81b2-3d4c-4e5f-8a9b-0c1d2e3f4a5b"
DOM_UUID = "c7a5fdbd-edaf-9455-926a-d65c16db1809"
D = "/domain/devices"


def dom(devices: str = "", os_extra: str = "", root: str = "domain") -> str:
    """A minimal libvirt domain around the given <devices> and <os> content."""
    return (f"<{root} type='kvm'><name>vm1</name><uuid>{DOM_UUID}</uuid><memory>1048576</memory>"
            f"<os><type arch='x86_64' machine='q35'>hvm</type>{os_extra}</os>"
            f"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devices}</devices></{root}>")


def uid(u: str) -> str:
    return f"uuid='{u}'"


def enc(fmt: str, ref: str) -> str:
    return f"<encryption format='{fmt}'><secret type='passphrase' {ref}/></encryption>"


def file_disk(dev: str, inner: str = "", src_inner: str = "", path: str = "/var/lib/libvirt/images/a.qcow2") -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file='{path}'>{src_inner}</source><target dev='{dev}' bus='virtio'/>{inner}</disk>")


def net_disk(proto: str, dev: str, inner: str = "", src_inner: str = "") -> str:
    return (f"<disk type='network' device='disk'><driver name='qemu' type='raw'/>{inner}"
            f"<source protocol='{proto}' name='pool/image'><host name='mon.example.com' port='6789'/>"
            f"{src_inner}</source><target dev='{dev}' bus='virtio'/></disk>")


def auth(secret_attrs: str) -> str:
    return f"<auth username='admin'><secret {secret_attrs}/></auth>"


def backing(src_inner: str, nested: str = "<backingStore/>", path: str = "/b.qcow2") -> str:
    return (f"<backingStore type='file'><format type='qcow2'/><source file='{path}'>{src_inner}</source>"
            f"{nested}</backingStore>")


CDROM = "<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda' bus='sata'/><readonly/></disk>"
ISCSI_HOSTDEV = ("<hostdev mode='subsystem' type='scsi'><source protocol='iscsi' "
                 "name='iqn.2014-08.com.example:iscsi-nopool/1'><host name='example.com' port='3260'/>"
                 "{auth}</source>{tail}</hostdev>")
PCI_HOSTDEV = ("<hostdev mode='subsystem' type='pci' managed='yes'><source>"
               "<address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/></source></hostdev>")
NVRAM_NET = ("<nvram type='network'><source protocol='{proto}' name='pool/nvram'>"
             "<host name='example.com' port='6000'/>{inner}</source></nvram>")


def tpm(inner: str, model: str = "tpm-tis") -> str:
    model_attr = f" model='{model}'" if model else ""
    return f"<tpm{model_attr}><backend type='emulator' version='2.0'>{inner}</backend></tpm>"


def tuples(refs: list[SecretRef]) -> list[tuple]:
    return [(r.uuid, r.usage_type, r.usage_id, r.kind, r.location, r.target) for r in refs]


# (id, domain XML, expected [(uuid, usage_type, usage_id, kind, location, target)])
POSITIVE = [
    ("vtpm-emulator-attr", dom(tpm(f"<encryption secret='{U1}'/>")),
     [(U1, "vtpm", None, VTPM, f"{D}/tpm[1]/backend/encryption/@secret", "tpm-tis")]),
    ("vtpm-proposed-form-uuid", dom(tpm(enc("vtpm", f"uuid='{U1}'"), model="tpm-crb")),
     [(U1, "vtpm", None, VTPM, f"{D}/tpm[1]/backend/encryption/secret", "tpm-crb")]),
    ("vtpm-proposed-form-usage-no-model", dom(tpm(enc("vtpm", "usage='VTPM_vm1'"), model="")),
     [(None, "vtpm", "VTPM_vm1", VTPM, f"{D}/tpm[1]/backend/encryption/secret", "tpm[1]")]),
    ("vtpm-second-tpm", dom(tpm("") + tpm(f"<encryption secret='{U2}'/>", model="tpm-spapr")),
     [(U2, "vtpm", None, VTPM, f"{D}/tpm[2]/backend/encryption/@secret", "tpm-spapr")]),
    ("disk-encryption-legacy-luks", dom(file_disk("vda", inner=enc("luks", f"uuid='{U1}'"))),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/encryption/secret", "vda")]),
    ("disk-encryption-source-luks", dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}'"))),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda")]),
    ("disk-encryption-luks2-second-disk", dom(CDROM + file_disk("vdb", src_inner=enc("luks2", f"uuid='{U2}'"))),
     [(U2, "volume", None, ENC, f"{D}/disk[2]/source/encryption/secret", "vdb")]),
    ("disk-encryption-luks-any", dom(file_disk("vdc", src_inner=enc("luks-any", f"uuid='{U3}'"))),
     [(U3, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vdc")]),
    ("disk-encryption-qcow-usage", dom(file_disk("vda", inner=enc("qcow", "usage='/var/lib/libvirt/images/a.qcow2'"))),
     [(None, "volume", "/var/lib/libvirt/images/a.qcow2", ENC, f"{D}/disk[1]/encryption/secret", "vda")]),
    ("disk-volume-type", dom("<disk type='volume' device='disk'><source pool='p' volume='v'>"
                             f"{enc('luks', uid(U1))}</source><target dev='vdd'/></disk>"),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vdd")]),
    ("rbd-layered-encryption", dom(net_disk("rbd", "vda", src_inner=(
        f"<encryption format='luks2' engine='librbd'><secret type='passphrase' uuid='{U1}'/>"
        f"<secret type='passphrase' uuid='{U2}'/></encryption>"))),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret[1]", "vda"),
      (U2, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret[2]", "vda")]),
    ("backing-chain-3-levels", dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}'"), inner=backing(
        enc("luks", f"uuid='{U2}'"), backing(enc("luks2", f"uuid='{U3}'"), backing(enc("luks", "usage='/base'"))))))
     , [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda"),
        (U2, "volume", None, ENC, f"{D}/disk[1]/backingStore[1]/source/encryption/secret", "vda"),
        (U3, "volume", None, ENC, f"{D}/disk[1]/backingStore[1]/backingStore[1]/source/encryption/secret", "vda"),
        (None, "volume", "/base", ENC,
         f"{D}/disk[1]/backingStore[1]/backingStore[1]/backingStore[1]/source/encryption/secret", "vda")]),
    ("backing-network-auth", dom(file_disk("vda", inner=(
        "<backingStore type='network'><format type='raw'/><source protocol='rbd' name='pool/base'>"
        f"<host name='mon'/>{auth(uid(U4))}</source><backingStore/></backingStore>"))),
     [(U4, "ceph", None, AUTH, f"{D}/disk[1]/backingStore[1]/source/auth/secret", "vda")]),
    ("mirror-with-chain", dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}'"), inner=(
        "<mirror type='file' job='copy' ready='yes'><format type='qcow2'/>"
        f"<source file='/copy.qcow2'>{enc('luks', uid(U2))}</source>"
        f"{backing(enc('luks', uid(U3)))}</mirror>"))),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda"),
      (U2, "volume", None, ENC, f"{D}/disk[1]/mirror/source/encryption/secret", "vda"),
      (U3, "volume", None, ENC, f"{D}/disk[1]/mirror/backingStore[1]/source/encryption/secret", "vda")]),
    ("mirror-legacy-encryption-and-auth", dom(file_disk("vdb", inner=(
        f"<mirror type='network' job='copy'>{enc('luks', uid(U2))}"
        + auth("type='ceph' usage='client.admin'") +
        "<source protocol='rbd' name='pool/copy'><host name='mon'/></source></mirror>"))),
     [(U2, "volume", None, ENC, f"{D}/disk[1]/mirror/encryption/secret", "vdb"),
      (None, "ceph", "client.admin", AUTH, f"{D}/disk[1]/mirror/auth/secret", "vdb")]),
    ("datastore", dom(file_disk("vda", src_inner=(
        "<dataStore type='file'><format type='raw'/>"
        f"<source file='/data'>{enc('luks', uid(U5))}</source></dataStore>"))),
     [(U5, "volume", None, ENC, f"{D}/disk[1]/source/dataStore/source/encryption/secret", "vda")]),
    ("rbd-auth-legacy-usage", dom(net_disk("rbd", "hdc", inner=auth("type='ceph' usage='mypassid'"))),
     [(None, "ceph", "mypassid", AUTH, f"{D}/disk[1]/auth/secret", "hdc")]),
    ("rbd-auth-source-untyped", dom(net_disk("rbd", "vda", src_inner=auth(f"uuid='{U1}'"))),
     [(U1, "ceph", None, AUTH, f"{D}/disk[1]/source/auth/secret", "vda")]),
    ("rbd-auth-unknown-type", dom(net_disk("rbd", "vda", src_inner=auth(f"type='bogus' uuid='{U1}'"))),
     [(U1, "ceph", None, AUTH, f"{D}/disk[1]/source/auth/secret", "vda")]),
    ("iscsi-disk-auth", dom(net_disk("iscsi", "sdb", src_inner=auth("type='iscsi' usage='libvirtiscsi'"))),
     [(None, "iscsi", "libvirtiscsi", AUTH, f"{D}/disk[1]/source/auth/secret", "sdb")]),
    ("iscsi-disk-auth-legacy", dom(net_disk("iscsi", "sdb", inner=auth(f"type='iscsi' uuid='{U2}'"))),
     [(U2, "iscsi", None, AUTH, f"{D}/disk[1]/auth/secret", "sdb")]),
    ("https-disk-auth-untyped", dom(net_disk("https", "vdz", src_inner=auth(f"uuid='{U3}'"))),
     [(U3, "iscsi", None, AUTH, f"{D}/disk[1]/source/auth/secret", "vdz")]),
    ("secret-type-overrides-protocol", dom(net_disk("iscsi", "sdc", src_inner=auth(f"type='ceph' uuid='{U3}'"))),
     [(U3, "ceph", None, AUTH, f"{D}/disk[1]/source/auth/secret", "sdc")]),
    ("uuid-uppercase", dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1.upper()}'"))),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda")]),
    ("uuid-no-dashes", dom(tpm(f"<encryption secret='{U2.replace('-', '').upper()}'/>")),
     [(U2, "vtpm", None, VTPM, f"{D}/tpm[1]/backend/encryption/@secret", "tpm-tis")]),
    ("hostdev-iscsi-address", dom(PCI_HOSTDEV + ISCSI_HOSTDEV.format(
        auth=auth("type='iscsi' usage='libvirtiscsi'"),
        tail="<address type='drive' controller='0' bus='0' target='0' unit='1'/>")),
     [(None, "iscsi", "libvirtiscsi", HOST, f"{D}/hostdev[2]/source/auth/secret", "drive:0:0:0:1")]),
    ("hostdev-iscsi-alias", dom(ISCSI_HOSTDEV.format(
        auth=auth(f"type='iscsi' uuid='{U4}'"),
        tail="<alias name='hostdev0'/><address type='drive' controller='0' bus='0' target='0' unit='0'/>")),
     [(U4, "iscsi", None, HOST, f"{D}/hostdev[1]/source/auth/secret", "hostdev0")]),
    ("hostdev-iscsi-no-address", dom(ISCSI_HOSTDEV.format(auth=auth(f"uuid='{U4}'"), tail="")),
     [(U4, "iscsi", None, HOST, f"{D}/hostdev[1]/source/auth/secret", None)]),
    ("nvram-network-iscsi", dom(os_extra=NVRAM_NET.format(
        proto="iscsi", inner=auth("type='iscsi' usage='mycluster_myname'"))),
     [(None, "iscsi", "mycluster_myname", NVRAM, "/domain/os/nvram/source/auth/secret", "nvram")]),
    ("nvram-network-rbd-encrypted", dom(os_extra=NVRAM_NET.format(
        proto="rbd", inner=auth(f"uuid='{U1}'") + enc("luks", f"uuid='{U2}'"))),
     [(U1, "ceph", None, NVRAM, "/domain/os/nvram/source/auth/secret", "nvram"),
      (U2, "volume", None, ENC, "/domain/os/nvram/source/encryption/secret", "nvram")]),
    ("same-secret-twice-kept", dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}'"))
                                   + file_disk("vdb", src_inner=enc("luks", f"uuid='{U1.upper()}'"))),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda"),
      (U1, "volume", None, ENC, f"{D}/disk[2]/source/encryption/secret", "vdb")]),
    ("document-order-mixed", dom(
        file_disk("vda", src_inner=enc("luks", f"uuid='{U2}'")) + tpm(f"<encryption secret='{U3}'/>")
        + ISCSI_HOSTDEV.format(auth=auth(f"uuid='{U4}'"), tail="")
        + net_disk("rbd", "vdb", src_inner=auth(f"uuid='{U5}'")),
        os_extra=NVRAM_NET.format(proto="iscsi", inner=auth(f"uuid='{U1}'"))),
     [(U1, "iscsi", None, NVRAM, "/domain/os/nvram/source/auth/secret", "nvram"),
      (U2, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda"),
      (U3, "vtpm", None, VTPM, f"{D}/tpm[1]/backend/encryption/@secret", "tpm-tis"),
      (U4, "iscsi", None, HOST, f"{D}/hostdev[1]/source/auth/secret", None),
      (U5, "ceph", None, AUTH, f"{D}/disk[2]/source/auth/secret", "vdb")]),
    ("domstatus-reads-inner-domain", (
        "<domstatus state='running' reason='booted' pid='4242'><monitor path='/mon.sock' type='unix'/>"
        f"{dom(file_disk('vda', src_inner=enc('luks', uid(U1))))}"
        "<privateData><objects><secret type='auth' alias='libvirt-1-storage-auth-secret0'/></objects>"
        f"<secret type='volume' uuid='{U5}'/></privateData></domstatus>"),
     [(U1, "volume", None, ENC, f"{D}/disk[1]/source/encryption/secret", "vda")]),
]

NEGATIVE = [
    ("no-secrets", dom(file_disk("vda") + CDROM + PCI_HOSTDEV + tpm(""), os_extra="<nvram>/var/nvram.fd</nvram>")),
    ("graphics-passwd", dom("<graphics type='vnc' port='-1' passwd='hunter2' passwdValidTo='2030-01-01T00:00:00'/>"
                            "<graphics type='spice' passwd='hunter2'/>")),
    ("nbd-tls", dom("<disk type='network' device='disk'><source protocol='nbd' name='exp' tls='yes'>"
                    "<host name='nbd.example.com' port='10809'/></source><target dev='vda'/></disk>")),
    ("reservations-cookies-ssl", dom(
        "<disk type='network' device='lun'><source protocol='https' name='/img'><host name='h' port='443'/>"
        "<ssl verify='no'/><cookies><cookie name='session'>abc</cookie></cookies>"
        "<reservations managed='no'><source type='unix' path='/pr.sock' mode='client'/></reservations>"
        "</source><target dev='sda' bus='scsi'/></disk>")),
    ("status-privatedata-in-source", dom(
        "<disk type='network' device='disk'><source protocol='rbd' name='p/i' index='1'><host name='mon'/>"
        "<privateData><nodenames><nodename type='storage' name='libvirt-1-storage'/></nodenames>"
        "<objects><secret type='auth' alias='libvirt-1-storage-auth-secret0'/>"
        "<secret type='encryption' alias='libvirt-1-storage-encryption-secret0'/></objects></privateData>"
        "</source><target dev='vda'/></disk>")),
    ("domstatus-privatedata-only", (
        "<domstatus state='running' pid='1'><privateData><secret type='volume' uuid='" + U5 + "'/>"
        "</privateData>" + dom() + "</domstatus>")),
    ("secret-outside-known-locations", dom("<interface type='network'><source network='default'/>"
                                           f"<secret uuid='{U1}'/></interface>")
     .replace("<memory>", f"<metadata><secret uuid='{U2}'/></metadata><memory>")),
]


@pytest.mark.parametrize("xml, expected", [c[1:] for c in POSITIVE], ids=[c[0] for c in POSITIVE])
def test_secret_refs_finds_every_location(xml: str, expected: list[tuple]) -> None:
    assert tuples(secret_refs(xml)) == expected


@pytest.mark.parametrize("xml", [c[1] for c in NEGATIVE], ids=[c[0] for c in NEGATIVE])
def test_non_references_are_ignored(xml: str) -> None:
    assert secret_refs(xml) == []


def test_unique_secret_refs_keeps_first_per_key() -> None:
    xml = dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}'"))
              + file_disk("vdb", src_inner=enc("luks", f"uuid='{U1.replace('-', '')}'"))
              + net_disk("rbd", "vdc", src_inner=auth("usage='client.admin'"))
              + net_disk("rbd", "vdd", src_inner=auth("usage='client.admin'")))
    uniq = unique_secret_refs(secret_refs(xml))
    assert [(r.key, r.target) for r in uniq] == [(("uuid", U1), "vda"), (("usage", "ceph:client.admin"), "vdc")]


def test_union_of_live_and_inactive() -> None:
    live = dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}'"), inner=(
        f"<mirror type='file' job='copy'><source file='/c'>{enc('luks', uid(U2))}</source>"
        "</mirror>")) + tpm(f"<encryption secret='{U3}'/>"))
    inactive = dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1.upper()}'"))
                   + file_disk("vdb", src_inner=enc("luks", f"uuid='{U4}'")) + tpm(f"<encryption secret='{U3}'/>")
                   + file_disk("vdc", src_inner=enc("luks", f"uuid='{U2}'")))
    assert [(r.uuid, r.location, r.target) for r in union_refs(live, inactive)] == [
        (U1, f"{D}/disk[1]/source/encryption/secret", "vda"),
        (U2, f"{D}/disk[1]/mirror/source/encryption/secret", "vda"),
        (U3, f"{D}/tpm[1]/backend/encryption/@secret", "tpm-tis"),
        (U4, f"{D}/disk[2]/source/encryption/secret", "vdb"),
        (U2, f"{D}/disk[3]/source/encryption/secret", "vdc"),
    ]
    assert union_refs() == []
    assert union_refs(live) == secret_refs(live)


@pytest.mark.parametrize("xml", [dom(), "<domstatus state='running'>" + dom() + "</domstatus>",
                                 dom().replace(DOM_UUID, DOM_UUID.upper().replace("-", ""))])
def test_domain_identity(xml: str) -> None:
    assert domain_identity(xml) == ("vm1", DOM_UUID)


@pytest.mark.parametrize("xml, fragment", [
    ("<domain><name>vm1</name", "domain XML is malformed: "),
    ("not xml at all", "domain XML is malformed: "),
    ("", "domain XML is malformed: "),
    ("<network><name>default</name></network>", "root element is <network>"),
    ("<domstatus state='running'><privateData/></domstatus>", "<domstatus> holds no <domain>"),
], ids=["truncated", "text", "empty", "wrong-root", "domstatus-without-domain"])
def test_malformed_xml_is_bad_input(xml: str, fragment: str) -> None:
    with pytest.raises(BadInput, match="domain XML is malformed") as exc:
        secret_refs(xml)
    assert fragment in exc.value.message and exc.value.hint and exc.value.exit_code == 2
    with pytest.raises(BadInput):
        domain_identity(xml)


@pytest.mark.parametrize("xml, value, location", [
    (dom(file_disk("vda", src_inner=enc("luks", "uuid='not-a-uuid'"))), "not-a-uuid",
     f"{D}/disk[1]/source/encryption/secret"),
    (dom(net_disk("rbd", "vda", src_inner=auth(f"uuid='{U1[:-1]}'"))), U1[:-1], f"{D}/disk[1]/source/auth/secret"),
    (dom(tpm(f"<encryption secret='{'g' * 32}'/>")), "g" * 32, f"{D}/tpm[1]/backend/encryption/@secret"),
    (dom(tpm("<encryption secret=''/>")), "''", f"{D}/tpm[1]/backend/encryption/@secret"),
    (dom(ISCSI_HOSTDEV.format(auth=auth("uuid='6dd3e4a5-1d7644ce-961f-f119f5aad935'"), tail="")),
     "6dd3e4a5-1d7644ce-961f-f119f5aad935", f"{D}/hostdev[1]/source/auth/secret"),
    (dom().replace(DOM_UUID, "1234"), "1234", "/domain/uuid"),
], ids=["word", "short", "non-hex", "empty", "half-dashed", "domain-uuid"])
def test_invalid_uuid_is_bad_input(xml: str, value: str, location: str) -> None:
    with pytest.raises(BadInput) as exc:
        secret_refs(xml) if location != "/domain/uuid" else domain_identity(xml)
    assert value in exc.value.message and location in exc.value.message and exc.value.exit_code == 2


@pytest.mark.parametrize("xml, location", [
    (dom(file_disk("vda", inner="<encryption format='luks'><secret type='passphrase'/></encryption>")),
     f"{D}/disk[1]/encryption/secret"),
    (dom(net_disk("rbd", "vda", src_inner="<auth username='sensitive-user'><secret type='ceph' usage=''/></auth>")),
     f"{D}/disk[1]/source/auth/secret"),
    (dom(tpm("<encryption format='vtpm'><secret type='passphrase'/></encryption>")),
     f"{D}/tpm[1]/backend/encryption/secret"),
    (dom(ISCSI_HOSTDEV.format(auth="<auth username='sensitive-user'><secret type='iscsi'/></auth>", tail="")),
     f"{D}/hostdev[1]/source/auth/secret"),
    (dom(os_extra=NVRAM_NET.format(proto="iscsi", inner="<auth username='sensitive-user'><secret/></auth>")),
     "/domain/os/nvram/source/auth/secret"),
], ids=["disk-encryption", "rbd-auth-empty-usage", "vtpm-proposed", "hostdev", "nvram"])
def test_secret_without_uuid_or_usage_is_bad_input(xml: str, location: str) -> None:
    with pytest.raises(BadInput) as exc:
        secret_refs(xml)
    assert location in exc.value.message and "neither uuid nor usage" in exc.value.message
    assert "sensitive-user" not in str(exc.value)


def test_missing_name_or_uuid_is_bad_input() -> None:
    with pytest.raises(BadInput, match="/domain/name"):
        domain_identity(dom().replace("<name>vm1</name>", ""))
    with pytest.raises(BadInput, match="/domain/uuid"):
        domain_identity(dom().replace(f"<uuid>{DOM_UUID}</uuid>", ""))


def test_uuid_and_usage_both_given_uuid_wins() -> None:
    [ref] = secret_refs(dom(file_disk("vda", src_inner=enc("luks", f"uuid='{U1}' usage='/img'"))))
    assert (ref.uuid, ref.usage_id, ref.key) == (U1, "/img", ("uuid", U1))
