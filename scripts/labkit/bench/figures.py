"""The figures: machine facts, the results table, BENCHMARKS.md and the planning plot."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import libvirt

from labkit.bench.measure import PY, say


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
    load = os.getloadavg()
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "cpu": cpu,
            "libvirt": _ver(libvirt.getVersion()), "libvirt_python": _dist_version("libvirt-python"),
            "qemu": qemu.splitlines()[0] if qemu else "",
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": [round(x, 2) for x in load]}


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except Exception:
        return ""


def _ver(v: int) -> str:
    return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"


def fmt_table(res: dict[str, Any]) -> str:
    rows = [("measure", "migcoord", "baseline", "ratio", "target", "met")]

    def add(measure, a, b, ratio, target, ok):
        rows.append((measure, a, b, ratio, target, ok))

    if "single" in res:
        s = res["single"]
        add("1 single migration (median)", f"{s['migcoord_median_s']:.2f}s", f"{s['manual_median_s']:.2f}s",
            f"{s['ratio']:.2f}x", "<= 1.0x", "yes" if s["ratio"] <= 1.0 else "NO")
    if "planning" in res:
        p = res["planning"]
        for r in p["by_size"]:
            add(f"2 plan, {r['n']} domains (median)", f"{r['migcoord_median_s']:.2f}s",
                f"{r['minimal_median_s']:.2f}s", f"{r['ratio']:.2f}x", "<= 1.3x",
                "yes" if r["ratio"] <= 1.3 else "NO")
        a, b = p["by_size"][0]["n"], p["by_size"][-1]["n"]
        add(f"2 plan scaling t({b})/t({a})", f"{p['scaling_migcoord']:.2f}", f"{p['scaling_minimal']:.2f}",
            "", f"<= {p['target_scaling_max']:.2f}",
            "yes" if p["scaling_migcoord"] <= p["target_scaling_max"] else "NO")
        for r in p["by_size"]:
            add(f"2 RPC calls per domain, n={r['n']}", f"{r['migcoord_rpc_per_domain']:.1f}",
                f"{r['minimal_rpc_per_domain']:.1f}",
                f"{r['migcoord_rpc_per_domain'] / r['minimal_rpc_per_domain']:.2f}x", "", "")
        if p.get("migcoord_rpc_marginal_per_domain") is not None:
            add("2 RPC calls per extra domain", f"{p['migcoord_rpc_marginal_per_domain']:.1f}",
                f"{p['minimal_rpc_marginal_per_domain']:.1f}", "", "", "")
        add("4 peak RSS, planning (max)", f"{max(r['migcoord_maxrss_kib_max'] for r in p['by_size']) / 1024:.0f} MiB",
            "", "", "", "")
    if "evacuation" in res:
        e = res["evacuation"]
        add(f"3 evacuate {e['guests']} guests (median)", f"{e['migcoord_median_s']:.2f}s",
            f"{e['manual_loop_median_s']:.2f}s", f"{e['ratio']:.2f}x", "<= 0.5x",
            "yes" if e["ratio"] <= 0.5 else "NO")
        add("4 peak RSS, evacuation (max)", f"{e['migcoord_maxrss_kib_max'] / 1024:.0f} MiB", "", "", "", "")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ensure_matplotlib() -> bool:
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    say("installing matplotlib into the venv (optional extra `bench`)")
    r = subprocess.run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "matplotlib"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        say(f"could not install matplotlib: {r.stderr.strip()[-500:]}")
        return False
    importlib.invalidate_caches()
    return True


def plot(res: dict[str, Any], path: Path) -> bool:
    if "planning" not in res:
        return False
    try:
        if not ensure_matplotlib():
            return False
        # NOTE: imported here, not at the top: matplotlib is optional and may just have been installed.
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        rows = res["planning"]["by_size"]
        ns = [r["n"] for r in rows]
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.plot(ns, [r["migcoord_median_s"] for r in rows], "o-", label="migcoord evacuate --dry-run")
        ax.plot(ns, [r["minimal_median_s"] for r in rows], "s--", label="minimal libvirt script")
        ax.set_xlabel("defined domains on the source")
        ax.set_ylabel("planning wall time, median (s)")
        ax.set_title("Planning time vs domain count" + (" (quick run)" if res["quick"] else ""), fontsize=10)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return True
    except Exception as e:  # the plot is a nicety: the table and JSON stand without it
        say(f"plot failed: {type(e).__name__}: {e}")
        return False


def markdown(res: dict[str, Any], table: str, plot_rel: str | None, note: str) -> str:
    m = res["machine"]
    kind = "quick run (`scripts/bench --quick`)" if res["quick"] else "full run (`scripts/bench`)"
    out = [
        "# Benchmarks", "",
        f"Latest figures: **{kind}**, {res['date']}" + (f" — **{note}**" if note else "") + ".",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, kernel {m['kernel']}, "
        f"libvirt {m['libvirt']}, {m['qemu']}, Python {m['python']}; load average at start "
        f"{', '.join(str(x) for x in m['loadavg_at_start'])}. The lab is `scripts/lab` (one libvirtd per "
        "host on this machine, real QEMU + swtpm, KVM when available).", "",
        "```", table, "```", "",
    ]
    if plot_rel:
        out += [f"![planning time against domain count]({plot_rel})", ""]
    out += [
        "## What is measured", "",
        "An untimed warm-up migration to each destination comes first. "
        "Each part runs both sides alternately (A/B, then B/A, ...) and reports the median over the "
        "repetitions; ratios are migcoord / baseline. Wall time is measured around the whole process "
        "(interpreter start-up included). Nothing is asserted: the script prints figures.", "",
        "1. **Single migration**: `migcoord migrate VM --from SRC --to DST` (a new process each time, "
        "journal in a temporary file) against the manual procedure run as `virsh` processes: "
        "`secret-dumpxml` on src → `secret-define` on dst, `secret-get-value` (base64) on src → "
        "`secret-set-value --base64` on dst, then `virsh migrate --live --p2p --persistent --undefinesource`. "
        "A fresh `scripts/lab vm NAME --on src` guest (128 MiB, encrypted vTPM) for every repetition; creating "
        "it is not timed. The manual side is given the secret UUID (discovering it is not timed).",
        "2. **Planning at scale**: `migcoord evacuate --dry-run --include-inactive --json` to dst and dst2 "
        "over N defined (not running) domains on src, each with its own vTPM secret (the `scripts/lab vm` "
        "XML with small memory, at most 32 MiB, so all fit the destinations' free memory; "
        "defined through the libvirt API), against a minimal libvirt-python script (run as a "
        "process too) making only the calls the plan needs: list domains (active, inactive), each domain's "
        "XML, each referenced secret's lookup + XML on src and lookup on each destination, free memory and "
        "domain capabilities once per destination. *Round trips*: a separate, untimed run of each side "
        "with libvirt client-side RPC logging (`LIBVIRT_LOG_FILTERS=1:rpc`), counting the "
        "`RPC_CLIENT_MSG_TX_QUEUE` lines of type 0 (one per call sent, keepalives excluded), divided by N; "
        "\"per extra domain\" is (calls(N_large) − calls(N_small)) / (N_large − N_small).",
        "3. **Evacuation throughput**: 8 running 128 MiB vTPM guests on src; "
        "`migcoord evacuate --parallel 4 --per-destination 2` to dst and dst2 against a sequential loop "
        "of the manual procedure of part 1 over the 8 guests, alternating destinations. Fresh guests "
        "for each side.",
        "4. **Peak memory**: `ru_maxrss` of the migcoord process (via `os.wait4`) in parts 2 and 3.", "",
        "Targets (issue 7): 1 ≤ 1.0×; 2 ≤ 1.3× and t(500)/t(100) ≤ 5.5 (for other sizes the bound is scaled "
        "with the size ratio: 5.5 × (N_large/N_small) / 5, i.e. 3.3 for the quick run's 50→150); 3 ≤ 0.5×. "
        "Every run also checks (untimed) that each side really did its job: the VM running on the "
        "destination only, every domain placed in the plan.", "",
        "## Reproduce", "",
        "```sh",
        "scripts/bench            # full run: 100/500 domains, 7 reps (5 for part 3), ~10-15 min",
        "scripts/bench --quick    # 50/150 domains, 3 reps",
        "scripts/bench --only 2 --reps 5 --sizes 100,300,500   # one part, own sizes",
        "```", "",
        "It uses its own lab instance (`MIGCOORD_LAB_DIR=/var/tmp/migcoord-lab-bench`, "
        "`MIGCOORD_LAB_FIRST_ADDR=71`, i.e. 127.0.0.71-73) unless those are set, brings hosts "
        "src,dst,dst2 up if needed and takes them down afterwards only if it started them. It runs with the "
        "project venv (`.venv`, or `$MIGCOORD_VENV`); matplotlib (extra `bench`) is installed on demand "
        "for the plot. Results: `bench-results.json` (`--out`), this file (`--markdown`), "
        "`benchmarks/planning.png` (`--plot`); `scripts/bench --render bench-results.json` redraws "
        "the table, this file and the plot from saved results.", "",
    ]
    return "\n".join(out)
