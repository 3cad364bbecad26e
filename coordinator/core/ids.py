"""Pure: UUID spelling. One rule for every UUID the tool reads — from XML, options or file names."""
from __future__ import annotations

import re
import uuid as _uuid

from .errors import BadInput

# 8-4-4-4-12 dashed or 32 plain hex digits, any case: what libvirt itself accepts.
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", re.I)


def looks_like_uuid(text: str) -> bool:
    return bool(_UUID_RE.fullmatch(text.strip()))


def canonical_uuid(raw: str, what: str = "secret UUID") -> str:
    """Lowercase dashed form, so the same UUID written two ways compares equal.
    ``what`` names the thing in the error (e.g. "secret UUID", "invalid UUID at /domain/uuid")."""
    text = raw.strip()
    if not _UUID_RE.fullmatch(text):
        raise BadInput(f"{what} {raw!r} is not a UUID",
                       hint="expected 32 hex digits, optionally dashed 8-4-4-4-12")
    return str(_uuid.UUID(hex=text))


def check_domain_ident(ident: str) -> str:
    """A domain name, UUID or id as an operator may give it: not empty, no control characters,
    no longer than a name libvirt could hold. BadInput before any lookup."""
    if not isinstance(ident, str) or not ident.strip():
        raise BadInput("empty domain name", hint="give the domain's name, UUID or id")
    if any(ord(c) < 32 or ord(c) == 127 for c in ident) or len(ident) > 1024:
        raise BadInput(f"not a domain name, UUID or id: {ident[:80]!r}")
    return ident
