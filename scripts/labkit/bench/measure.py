"""Running the measured processes: wall time, exit code, peak memory, libvirt RPC calls."""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

PY = sys.executable


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run_timed(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one process; wall time, exit code, output and ru_maxrss (KiB) via os.wait4.
    Output goes to temporary files so that wait4 is the one call that reaps the child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _pid, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"wall_s": wall, "rc": p.returncode, "stdout": out.read(), "stderr": err.read(),
                "maxrss_kib": ru.ru_maxrss}


def must(r: dict[str, Any], what: str) -> dict[str, Any]:
    if r["rc"] != 0:
        out = (r["stderr"] or r["stdout"]).decode(errors="replace")[-2000:]
        raise RuntimeError(f"{what} exited {r['rc']}: {out}")
    return r


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def order(rep: int) -> tuple[str, str]:
    return ("A", "B") if rep % 2 == 0 else ("B", "A")


RPC_TX = re.compile(r"RPC_CLIENT_MSG_TX_QUEUE: .* prog=(\d+) vers=\d+ proc=(\d+) type=(\d+)")


def count_rpc(argv: list[str], tmp: Path, label: str) -> tuple[int, Counter[str]]:
    """Client-side libvirt RPC log: one RPC_CLIENT_MSG_TX_QUEUE probe line per message queued;
    type=0 (VIR_NET_CALL) lines are the calls (keepalives and streams are other types)."""
    log = tmp / f"rpc-{label}.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, LIBVIRT_DEBUG="1", LIBVIRT_LOG_FILTERS="1:rpc",
               LIBVIRT_LOG_OUTPUTS=f"1:file:{log}")
    must(run_timed(argv, env=env), f"{label} (RPC counting run)")
    calls: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        m = RPC_TX.search(line)
        if m and m.group(3) == "0":
            calls[f"{m.group(1)}:{m.group(2)}"] += 1
    log.unlink(missing_ok=True)
    return sum(calls.values()), calls
