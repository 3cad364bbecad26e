"""coordinator.core.versions: libvirt's integer versions and tools' printed versions, formatted and compared."""
from __future__ import annotations

import pytest

from coordinator.core.versions import older, parse_version, version_str, version_text


@pytest.mark.parametrize("v, text", [
    (9_000_000, "9.0.0"),
    (7_002_022, "7.2.22"),
    (12_001_000, "12.1.0"),
    (8_010_000, "8.10.0"),
    (999, "0.0.999"),
    (0, "0.0.0"),
])
def test_version_str(v, text):
    assert version_str(v) == text


@pytest.mark.parametrize("v, text", [((0, 7, 1), "0.7.1"), ((9, 0), "9.0"), (None, "unknown"), ((), "unknown")])
def test_version_text(v, text):
    assert version_text(v) == text


@pytest.mark.parametrize("text,expected", [
    ("TPM emulator version 0.7.1, Copyright (c) 2014-2021 IBM Corp.", (0, 7, 1)),
    ("TPM emulator version 0.10.0, Copyright (c) 2014-2022 IBM Corp. and others", (0, 10, 0)),
    ("libvirtd (libvirt) 9.0.0", (9, 0, 0)),
    ("0.9.2-3.1+deb12u1", (0, 9, 2)),
    ("1:0.9.6-1", (0, 9, 6)),
    ("0.9.6\n", (0, 9, 6)),
    ("v0.8.2", (0, 8, 2)),
    ("no version here", None),
    ("", None),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("dst,src,is_older", [
    ((0, 7, 1), (0, 7, 1), False),
    ((0, 7, 0), (0, 7, 1), True),
    ((0, 10, 0), (0, 9, 9), False),   # numeric, not lexical
    ((0, 9), (0, 9, 0), False),
    ((0, 9), (0, 9, 1), True),
    ((1, 0), (0, 99, 99), False),
])
def test_older_compares_numerically_and_pads_the_shorter_version(dst, src, is_older):
    assert older(dst, src) is is_older
