"""coordinator.core.ids: one spelling for every UUID the tool reads."""
from __future__ import annotations

import pytest

from coordinator.core.errors import BadInput
from coordinator.core.ids import canonical_uuid, looks_like_uuid

U = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"


@pytest.mark.parametrize("raw", [
    pytest.param(U, id="dashed"),
    pytest.param(U.replace("-", ""), id="plain-32-hex"),
    pytest.param(U.upper(), id="upper-case"),
    pytest.param(U.replace("-", "").upper(), id="plain-upper"),
    pytest.param(f"  {U}\n", id="surrounding-whitespace"),
    pytest.param(f"\t{U.upper().replace('-', '')} ", id="plain-upper-whitespace"),
])
def test_uuid_spellings_become_the_canonical_form(raw):
    assert looks_like_uuid(raw)
    assert canonical_uuid(raw) == U


@pytest.mark.parametrize("raw", [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param(U[:-1], id="too-short"),
    pytest.param(U + "0", id="too-long"),
    pytest.param(U.replace("6", "g", 1), id="not-hex"),
    pytest.param("6dd3e4a51d76-44ce-961f-f119f5aad935", id="dash-missing"),
    pytest.param("6dd3e4a5-1d7644ce-961f-f119f5aad935-", id="dash-misplaced"),
    pytest.param("{" + U + "}", id="braces"),
    pytest.param("urn:uuid:" + U, id="urn"),
    pytest.param(U[:18] + " " + U[19:], id="inner-space"),
    pytest.param("VTPM_example", id="a-usage-name"),
])
def test_anything_but_a_uuid_is_refused_naming_it(raw):
    assert not looks_like_uuid(raw)
    with pytest.raises(BadInput) as ei:
        canonical_uuid(raw)
    assert repr(raw) in str(ei.value)


def test_bad_uuid_message_names_the_thing():
    with pytest.raises(BadInput, match=r"^UUID at /domain/uuid: 'x' is not a UUID"):
        canonical_uuid("x", "UUID at /domain/uuid:")
    with pytest.raises(BadInput, match=r"^secret UUID 'x' is not a UUID"):
        canonical_uuid("x")
