"""Pure: what a domain's XML says, read with the standard library only.

- ``parse``: the one place that parses a domain document (and unwraps ``<domstatus>``);
- ``secret_refs``: every secret the domain references (vTPM, disk encryption, network-disk auth…);
- ``facts``: every other fact the checks read (CPU, machine, memory, TPMs, disks, networks);
- ``document``: a domain's definitions parsed once — facts, secret references and lease together.
"""
