"""The real multi-host libvirt lab (scripts/lab), its test and benchmark client, and the benchmarks.

Every module here is standard-library only (the lab runs before any venv exists), except
``client`` and the ``bench`` package, which need libvirt-python and run in the project venv.
"""
