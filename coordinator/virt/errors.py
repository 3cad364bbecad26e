"""libvirt errors: the one place that decides whether a ``libvirtError`` is worth retrying
(house rule 3) and that turns one into a one-line message."""
from __future__ import annotations

import enum

import libvirt


class Retry(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


# (error code, error domain or None for "any domain") -> why it is transient.
# Everything not listed is PERMANENT: we never retry blindly. A wrong secret value
# (VIR_ERR_OPERATION_FAILED from QEMU), a missing secret (VIR_ERR_NO_SECRET), an unsafe
# migration, an incompatible CPU... would fail the same way again.
TRANSIENT_ERRORS: dict[tuple[int, int | None], str] = {
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC): "cannot connect / connection reset",
    (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC): "RPC failure (peer went away)",
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC): "client socket is closed",
    (libvirt.VIR_ERR_NO_CONNECT, None): "no connection to the hypervisor",
    (libvirt.VIR_ERR_OPERATION_TIMEOUT, None): "cannot acquire state change lock (job busy)",
    (libvirt.VIR_ERR_AUTH_UNAVAILABLE, None): "authentication backend temporarily unavailable",
    (libvirt.VIR_ERR_NO_SERVER, None): "daemon server not (yet) available",
}

# The libvirtError class itself, for callers that must tell libvirt's failures from others
# without importing libvirt (house rule 1).
LibvirtError = libvirt.libvirtError


def classify_code(code: int, domain: int) -> Retry:
    """Pure decision on (code, domain): TRANSIENT only when listed in TRANSIENT_ERRORS."""
    if (code, domain) in TRANSIENT_ERRORS or (code, None) in TRANSIENT_ERRORS:
        return Retry.TRANSIENT
    return Retry.PERMANENT


def classify(exc: BaseException) -> Retry:
    """Classify any exception; only libvirt errors can be transient."""
    if isinstance(exc, libvirt.libvirtError):
        return classify_code(exc.get_error_code() or 0, exc.get_error_domain() or 0)
    return Retry.PERMANENT


def is_transient(exc: BaseException) -> bool:
    """The predicate handed to tenacity's ``retry_if_exception``."""
    return classify(exc) is Retry.TRANSIENT


def error_summary(exc: BaseException | None) -> str:
    """One line with libvirt's message and its code/domain names (no secret can be in it:
    libvirt never puts secret values in error messages)."""
    if isinstance(exc, libvirt.libvirtError):
        code, dom = exc.get_error_code(), exc.get_error_domain()
        lines = (exc.get_error_message() or str(exc)).strip().splitlines()
        msg = lines[0] if lines else "libvirt gave no message"
        return f"{msg} [{_const_name('VIR_ERR_', code)}/{_const_name('VIR_FROM_', dom)}]"
    return str(exc)


def _const_name(prefix: str, value: int | None) -> str:
    for k in dir(libvirt):
        if k.startswith(prefix) and getattr(libvirt, k) == value:
            return k
    return str(value)


_SILENCED = False


def silence_default_handler() -> None:
    # NOTE: libvirt's default error handler prints every error to stderr, even handled ones.
    global _SILENCED
    if not _SILENCED:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _SILENCED = True
