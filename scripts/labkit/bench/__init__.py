"""Benchmarks for migcoord on the real lab (scripts/bench; the entry point is ``labkit.bench.cli``).

Needs libvirt-python (the project venv): only ``figures`` imports libvirt itself; the lab is
reached through ``labkit.client``.
"""
