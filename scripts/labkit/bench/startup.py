"""Start-up time of the command line (issue #15), measured without a lab.

Each figure is the wall time of a fresh process (fork + exec + interpreter + imports + work +
exit, from ``measure.run_timed``), the median of ``reps`` runs; the four processes are run in
turn, in an order that rotates every repetition so a burst of load on the machine is spread
over all of them instead of landing on one:

``python``          ``python -c pass``: the interpreter alone (the floor).
``import_libvirt``  ``python -c 'import libvirt'``: the floor plus libvirt-python, which every
                    command that talks to a host needs anyway (the issue's yardstick: a command
                    should start within 50 ms of this).
``version``         ``python -m coordinator --version``: parser built, nothing else loaded.
``check``           ``python -m coordinator check startup-probe --from qemu+tcp://127.0.0.1:1/system
                    --to qemu+tcp://127.0.0.1:2/system``: the whole ``check`` command — settings,
                    parser, the checks and libvirt imported, two connection attempts, the report
                    rendered — against ports where nothing listens. The connections are refused at
                    once (no retry, no sleep, no DNS: the addresses are literal), so the figure is
                    check's start-up plus two refused TCP connects and the rendering of a report
                    whose checks are all skipped: an honest upper bound of the time ``check`` takes
                    before it can do real work. It exits 1 (HOST-REACHABLE blocks); that exit code
                    is verified, so a change that makes it fail differently is not timed.

The code measured is whatever ``python -m coordinator`` imports from the caller's working
directory and ``PYTHONPATH`` (as for the rest of the bench). The settings file is kept out of it
(``MIGCOORD_CONFIG`` points to an empty file), so the figure does not depend on the machine's
``/etc/migcoord/config.toml``. Standard library only.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .measure import median, run_timed

PROBES: dict[str, tuple[list[str], int]] = {  # name → (arguments after the interpreter, expected exit code)
    "python": (["-c", "pass"], 0),
    "import_libvirt": (["-c", "import libvirt"], 0),
    "version": (["-m", "coordinator", "--version"], 0),
    "check": (["-m", "coordinator", "check", "startup-probe", "--from", "qemu+tcp://127.0.0.1:1/system",
               "--to", "qemu+tcp://127.0.0.1:2/system"], 1),
}


def measure_startup(python: str, reps: int) -> dict[str, Any]:
    """Median wall time (seconds) of each probe over ``reps`` fresh processes, and the raw
    lists under ``"raw"``. ``python`` is the interpreter that has the project importable (the
    venv's; ``PYTHONPATH`` from the environment is passed on)."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    names = list(PROBES)
    raw: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="migcoord-startup-") as tmp:
        empty = Path(tmp) / "config.toml"
        empty.write_text("")
        os.chmod(empty, 0o600)
        env = dict(os.environ, MIGCOORD_CONFIG=str(empty))
        for rep in range(reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:  # a rotating order
                args, expected = PROBES[name]
                r = run_timed([python, *args], env=env)
                if r["rc"] != expected:
                    tail = (r["stderr"] or r["stdout"]).decode(errors="replace")[-1000:]
                    raise RuntimeError(f"startup probe {name!r} exited {r['rc']} (expected {expected}): {tail}")
                raw[name].append(r["wall_s"])
    out: dict[str, Any] = {n: median(raw[n]) for n in names}
    out["raw"] = raw
    return out


if __name__ == "__main__":  # python -m labkit.bench.startup [PYTHON [REPS]]: a quick look
    import json
    import sys

    figures = measure_startup(sys.argv[1] if len(sys.argv) > 1 else sys.executable,
                              int(sys.argv[2]) if len(sys.argv) > 2 else 15)
    print(json.dumps({k: v for k, v in figures.items() if k != "raw"}, indent=2))
