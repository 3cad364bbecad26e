"""Pure: version numbers as libvirt encodes them (major*1,000,000 + minor*1,000 + release) and as
tools print them ("swtpm 0.7.1"). One place to format and compare both."""
from __future__ import annotations

import re

_VERSION_RE = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)")


def version_str(v: int) -> str:
    """libvirt's major*1,000,000 + minor*1,000 + release → "major.minor.release"."""
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


def parse_version(text: str) -> tuple[int, ...] | None:
    """The first dotted version in a tool's output, as a tuple; None when there is none.

    "TPM emulator version 0.7.1, Copyright ..." → (0, 7, 1); "libvirtd (libvirt) 9.0.0" → (9, 0, 0);
    a Debian version "0.9.2-3.1+deb12u1" → (0, 9, 2) (upstream part only: an epoch "1:" is skipped)."""
    m = _VERSION_RE.search(re.sub(r"(?<![\w.])\d+:(?=\d)", "", text))
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def version_text(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "unknown"


def older(dst: tuple[int, ...], src: tuple[int, ...]) -> bool:
    """dst < src, padding the shorter with zeros (0.9 == 0.9.0)."""
    n = max(len(dst), len(src))
    return dst + (0,) * (n - len(dst)) < src + (0,) * (n - len(src))
