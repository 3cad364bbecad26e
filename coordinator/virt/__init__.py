"""The libvirt seam: the only package that imports ``libvirt`` (house rule 1).

``errors`` classifies and formats libvirtError, ``host`` wraps a connection, ``guest`` a domain.
Symbolic flag names from ``core.params`` become ``VIR_*`` constants here and nowhere else.
"""
