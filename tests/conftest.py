"""Test-session settings that must hold before anything imports ``labkit`` (it reads its lab
directory and addresses from the environment at import).

Under pytest-xdist (``scripts/test`` runs ``-n 2 --dist loadfile``) each worker brings up its own
lab: ``MIGCOORD_LAB_DIR`` gets the worker id appended and ``MIGCOORD_LAB_FIRST_ADDR`` moves up by
``ADDR_STRIDE`` per worker (gw0: 127.0.0.11-13, gw1: .31-33; test_lab's solo host adds 50), so two
labs never share an address, a port or a file. Without xdist nothing changes.
"""
from __future__ import annotations

import os

ADDR_STRIDE = 20


def _per_worker_lab() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    n = int(worker[2:])
    os.environ["MIGCOORD_LAB_DIR"] = f"{os.environ.get('MIGCOORD_LAB_DIR', '/var/tmp/migcoord-lab')}-{worker}"
    os.environ["MIGCOORD_LAB_FIRST_ADDR"] = str(int(os.environ.get("MIGCOORD_LAB_FIRST_ADDR", "11")) + ADDR_STRIDE * n)


_per_worker_lab()
