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


def lab_stacks(res: dict[str, Any]) -> str:
    """The lab hosts' releases and versions (``MIGCOORD_LAB_STACK``): the machine's own libvirt is only the
    control side's when the hosts run in another release's root."""
    seen: dict[str, list[str]] = {}
    for name, h in (res.get("lab_hosts") or {}).items():
        what = (f"{h.get('stack') or '?'} (libvirt {h.get('libvirt', '?')}, QEMU {h.get('qemu', '?')}, "
                f"swtpm {h.get('swtpm', '?')})")
        seen.setdefault(what, []).append(name)
    return "; ".join(f"{'/'.join(names)} on {what}" for what, names in seen.items())


def machine_line(res: dict[str, Any]) -> str:
    """The machine every table was measured on: CPU, cores, KVM or TCG (the lab's record),
    libvirt and QEMU versions (the control machine's, then the lab hosts'); printed with each table."""
    m = res["machine"]
    accel = {"kvm": "KVM", "qemu": "TCG"}.get(res.get("lab_accel") or "", "no lab")
    cpu = f", guest CPU {res['lab_cpu']}" if res.get("lab_cpu") else ""
    qemu = m.get("qemu", "")
    qemu = "QEMU " + qemu.split("version", 1)[1].split()[0] if "version" in qemu else qemu or "QEMU ?"
    return (f"Machine: {m.get('cpu') or '?'}, {m.get('nproc')} cores, {m.get('memory_gib')} GiB, {accel}{cpu}; "
            f"libvirt {m.get('libvirt')}, {qemu}, Python {m.get('python')}, kernel {m.get('kernel')}; "
            f"load average at start {', '.join(str(x) for x in m.get('loadavg_at_start', []))}"
            + (f"; lab hosts: {lab_stacks(res)}" if res.get("lab_hosts") else ""))


def grid(rows: list[tuple[str, ...]]) -> str:
    """A plain-text table: the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _s(x: float | None, unit: str = "s", digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def _met(ok: bool | None) -> str:
    return "" if ok is None else "yes" if ok else "NO"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def summary_rows(res: dict[str, Any]) -> list[tuple[str, ...]]:
    """The targets of issue 15, one row each: measure, migcoord, baseline, ratio, target, met."""
    rows: list[tuple[str, ...]] = [("measure", "migcoord", "baseline", "ratio", "target", "met")]
    st = res.get("startup")
    if st and "skipped" not in st:
        for k, what in (("version", "--version"), ("check", "check")):
            over = st.get(f"{k}_over_import_libvirt_s")
            rows.append((f"0 start-up `{what}` vs import libvirt", _s(st.get(k), digits=3),
                         _s(st.get("import_libvirt"), digits=3),
                         "-" if over is None else f"{over * 1000:+.0f} ms", "<= +50 ms",
                         _met(None if over is None else over <= st["target_over_s_max"])))
    if "single" in res:
        s = res["single"]
        rows.append(("1 single migration (median)", _s(s["migcoord_median_s"]), _s(s["manual_median_s"]),
                     f"{s['ratio']:.2f}x", "<= 1.0x", _met(s["ratio"] <= s["target_ratio_max"])))
    if "planning" in res:
        rows += _planning_rows(res["planning"])
    if "evacuation" in res:
        rows += _evacuation_rows(res["evacuation"])
    return rows


def _planning_rows(p: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in p["by_size"]:
        rows.append((f"2 plan, {r['n']} domains (median)", _s(r["migcoord_median_s"]), _s(r["minimal_median_s"]),
                     f"{r['ratio']:.2f}x", f"<= {p['target_ratio_max']}x", _met(r["ratio"] <= p["target_ratio_max"])))
    a, b = p["scaling_sizes"]
    if a != b:
        rows.append((f"2 plan scaling t({b})/t({a})", f"{p['scaling_migcoord']:.2f}", f"{p['scaling_minimal']:.2f}",
                     f"linear {p['scaling_linear']:.2f}", f"<= {p['target_scaling_max']:.2f}",
                     _met(p["scaling_migcoord"] <= p["target_scaling_max"])))
    for r in p["by_size"]:
        if "migcoord_rpc_per_domain" in r:
            rows.append((f"2 RPC calls per domain, n={r['n']}", f"{r['migcoord_rpc_per_domain']:.1f}",
                         f"{r['minimal_rpc_per_domain']:.1f}",
                         f"{r['migcoord_rpc_per_domain'] / r['minimal_rpc_per_domain']:.2f}x", "", ""))
    if p.get("migcoord_rpc_marginal_per_domain") is not None:
        rows.append(("2 RPC calls per extra domain", f"{p['migcoord_rpc_marginal_per_domain']:.1f}",
                     f"{p['minimal_rpc_marginal_per_domain']:.1f}", "", "", ""))
    big = p["by_size"][-1]
    rows.append((f"4 peak RSS, planning {big['n']} domains", _mib(big["migcoord_maxrss_kib_max"]),
                 _mib(big.get("minimal_maxrss_kib_max")), "", "", ""))
    return rows


def _evacuation_rows(e: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    par = e["parallel"]
    if e.get("ratio") is not None:
        rows.append((f"3 evacuate {e['guests']} guests vs xargs -P {par}", _s(e["migcoord_median_s"]),
                     _s(e["xargs_median_s"]), f"{e['ratio']:.2f}x", f"<= {e['target_ratio_max']}x",
                     _met(e["ratio"] <= e["target_ratio_max"])))
    if e.get("flatness") is not None:
        a, b = e["flatness_guests"]
        head = e["curve"][0]
        last = e["curve"][-1]
        rows.append((f"3 migcoord s/guest, {b} vs {a} guests", _s(last["migcoord_per_guest_s"]),
                     _s(head["migcoord_per_guest_s"]), f"{e['flatness']:.2f}x", f"<= {e['target_flatness_max']}x",
                     _met(e["flatness"] <= e["target_flatness_max"])))
    for c in e["curve"][1:]:
        if c.get("ratio") is not None:
            rows.append((f"3 evacuate {c['guests']} guests vs xargs -P {par}", _s(c["migcoord_median_s"]),
                         _s(c["xargs_median_s"]), f"{c['ratio']:.2f}x", "", ""))
    rows.append(("4 peak RSS, evacuation (max)", _mib(e.get("migcoord_maxrss_kib_max")), "", "", "", ""))
    return rows


def startup_table(st: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("process", "median", "over import libvirt")]
    base = st.get("import_libvirt")
    for k, what in (("python", "python -c pass"), ("import_libvirt", "python -c 'import libvirt'"),
                    ("version", "migcoord --version"), ("check", "migcoord check")):
        v = st.get(k)
        over = v - base if isinstance(v, int | float) and isinstance(base, int | float) else None
        rows.append((what, _s(v, digits=3), "" if k in ("python", "import_libvirt") else
                     "-" if over is None else f"{over * 1000:+.0f} ms"))
    return grid(rows) + f"\n(median of {st.get('reps')} runs each)"


def breakdown_table(s: dict[str, Any]) -> str:
    """Where the time of one `migcoord migrate` goes: the median of each phase it reports."""
    t = s.get("timings_median_s")
    q = s.get("qemu_elapsed_median_s") or {}
    tail = (f"\nwall time measured outside the process (median): migcoord {_s(s['migcoord_median_s'])}, "
            f"manual {_s(s['manual_median_s'])}; QEMU's own time_elapsed (destination's completed job, "
            f"median): migcoord {_s(q.get('migcoord'))}, manual {_s(q.get('manual'))}")
    if not t:
        return "migcoord migrate --json reported no \"timings\" (this version does not split its time)" + tail
    total = t.get("total")
    rows: list[tuple[str, ...]] = [("phase", "median", "share of total")]
    for k, v in t.items():
        share = "" if k == "total" or v is None or not total else f"{100 * v / total:.0f}%"
        name = "  of which QEMU (time_elapsed)" if k == "qemu_elapsed" else k
        rows.append((name, _s(v, digits=3), share))
    return grid(rows) + f"\n(median per phase over {len(s.get('timings_per_rep', []))} runs)" + tail


def planning_table(p: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("domains", "migcoord", "minimal", "ratio", "migcoord RSS", "minimal RSS",
                                    "RPC/domain (migcoord, minimal)")]
    for r in p["by_size"]:
        rpc = (f"{r['migcoord_rpc_per_domain']:.1f}, {r['minimal_rpc_per_domain']:.1f}"
               if "migcoord_rpc_per_domain" in r else "")
        rows.append((str(r["n"]), _s(r["migcoord_median_s"]), _s(r["minimal_median_s"]), f"{r['ratio']:.2f}x",
                     _mib(r["migcoord_maxrss_kib_max"]), _mib(r.get("minimal_maxrss_kib_max")), rpc))
    a, b = p["scaling_sizes"]
    return grid(rows) + (f"\nt({b})/t({a}): migcoord {p['scaling_migcoord']:.2f}, minimal "
                         f"{p['scaling_minimal']:.2f}, linear {p['scaling_linear']:.2f}; median of {p['reps']} runs "
                         f"each; domains of {p['domain_memory_mib']} MiB" if a != b else "")


def curve_table(e: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("guests", "migcoord", "per guest", f"xargs -P {e['parallel']}", "per guest",
                                    "ratio", "runs")]
    for c in e["curve"]:
        rows.append((str(c["guests"]), _s(c["migcoord_median_s"]), _s(c["migcoord_per_guest_s"]),
                     _s(c["xargs_median_s"]), _s(c["xargs_per_guest_s"]),
                     "-" if c["ratio"] is None else f"{c['ratio']:.2f}x", str(c["reps"])))
    return grid(rows) + (f"\n{e['guest_memory_mib']} MiB guests; migcoord evacuate --parallel {e['parallel']} "
                         f"--per-destination {e['per_destination']}; medians")


PROFILE_ROWS = (("to_plan_s", "start-up, connections, plan (launch → plan)"),
                ("first_checks_s", "first guest's checks (plan → its migration-start)"),
                ("per_guest_prepare_s", "per guest: lease + provisioning (mean)"),
                ("per_guest_migrate_verify_s", "per guest: libvirt migration + verify (mean)"),
                ("done_spread_s", "first → last guest done"),
                ("exit_s", "last journal event → process exit"))


def profile_table(e: dict[str, Any]) -> str:
    """Where migcoord's evacuation time goes, from its journal: one column per guest count."""
    points = [c for c in e["curve"] if c.get("profile_median")]
    if not points:
        return "no journal profile"
    rows: list[tuple[str, ...]] = [("step (median of runs)", *(f"{c['guests']} guests" for c in points))]
    rows += [(what, *(_s(c["profile_median"].get(k), digits=3) for c in points)) for k, what in PROFILE_ROWS]
    rows.append(("wall time (median)", *(_s(c["migcoord_median_s"], digits=3) for c in points)))
    return grid(rows) + (f"\n--parallel {e['parallel']}: the guests migrate in waves of {e['parallel']}; "
                         "per-guest figures are means over the run's guests")


def sections(res: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, table) for each table the results have; the first is the targets table."""
    rows = summary_rows(res)
    out = [("Targets (issue 15)", grid(rows))] if len(rows) > 1 else []
    st = res.get("startup")
    if st:
        out.append(("Start-up", f"skipped: {st['skipped']}" if "skipped" in st else startup_table(st)))
    if "single" in res:
        out.append(("Where the time goes in one migration", breakdown_table(res["single"])))
    if "planning" in res:
        out.append(("Planning at scale", planning_table(res["planning"])))
    if "evacuation" in res:
        out.append(("Evacuation: time per guest", curve_table(res["evacuation"])))
        out.append(("Evacuation: where migcoord's time goes (its journal)", profile_table(res["evacuation"])))
    return out


def tables(res: dict[str, Any]) -> str:
    """Every table, each with the machine it was measured on (what the bench prints)."""
    line = machine_line(res)
    return "\n\n".join(f"== {title}\n{line}\n{text}" for title, text in sections(res))


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
        ax.plot(ns, [res["planning"]["target_ratio_max"] * r["minimal_median_s"] for r in rows], ":", color="grey",
                label=f"target: {res['planning']['target_ratio_max']}x the minimal script")
        ax.set_xlabel("defined domains on the source")
        ax.set_ylabel("planning wall time, median (s)")
        ax.set_title("Planning time vs domain count" + (" (quick run)" if res["quick"] else ""), fontsize=10)
        if max(ns) >= 10 * min(ns):  # 50 … 2,000: log axes keep the small sizes readable; linear = slope 1
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.minorticks_off()
        else:
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


HISTORY = "## History and what limits each figure"


def kept_section(old: str, heading: str) -> str:
    """A hand-written section of the previous BENCHMARKS.md (heading to the next '## '), kept
    when the figures are rewritten; '' if there is none."""
    if heading not in old:
        return ""
    rest = old[old.index(heading) + len(heading):]
    end = rest.find("\n## ")
    return heading + (rest if end < 0 else rest[:end]).rstrip() + "\n"


def markdown(res: dict[str, Any], plot_rel: str | None, note: str, old: str = "") -> str:
    kind = "quick run (`scripts/bench --quick`)" if res["quick"] else "full run (`scripts/bench`)"
    line = machine_line(res)
    out = [
        "# Benchmarks", "",
        f"Latest figures: **{kind}**, {res['date']}, code {res.get('commit', '?')}"
        + (f" — **{note}**" if note else "") + ".",
        "The lab is `scripts/lab` (one libvirtd per host on this machine, real QEMU + swtpm, KVM when available).",
        "",
    ]
    for title, text in sections(res):
        out += [f"## {title}", "", line + ".", "", "```", text, "```", ""]
        if title == "Planning at scale" and plot_rel:
            out += [f"![planning time against domain count]({plot_rel})", ""]
    history = kept_section(old, HISTORY)
    if history:
        out += [history]
    out += METHOD
    return "\n".join(out)


METHOD = [
    "## What is measured", "",
    "Each part runs both sides alternately (A/B, then B/A, ...) and reports the median over the repetitions; "
    "ratios are migcoord / baseline. Wall time is measured around the whole process (interpreter start-up "
    "included). The measured `python -m coordinator` processes run this checkout's code (first on "
    "`PYTHONPATH`; the bench checks which file they import, and records the commit). Before parts 1 and 3, "
    "one untimed manual migration to each destination (both at once) pays for the lab's cold start (the first "
    "guest a host starts costs ~5 s of QEMU capability probing). Creating and removing guests is never timed. "
    "Nothing is asserted: the script prints figures, and checks (untimed) that each side really did its job.",
    "",
    "0. **Start-up**: `migcoord --version` and `migcoord check` (as `python -m coordinator`) against "
    "`python -c 'import libvirt'` and a bare `python -c pass`, medians of many runs "
    "(`labkit/bench/startup.py`). No lab. Target: within 50 ms of `import libvirt`.",
    "1. **Single migration**: `migcoord migrate VM --from SRC --to DST --json` (a new process each time, "
    "journal in a temporary file) against the operator's manual procedure, `scripts/labkit/bench/manual-migrate.sh`: "
    "one `virsh` process per step — `secret-dumpxml` on src → `secret-define` on dst, `secret-get-value` "
    "(base64) on src → `secret-set-value --base64` on dst (the value on that process's argv, as the usual "
    "procedure does; migcoord never does that), then `virsh migrate --live --p2p --persistent --undefinesource`. "
    "A fresh 128 MiB guest with an encrypted vTPM (the `scripts/lab vm` XML, defined through the API) for "
    "every repetition. The manual side is given the secret UUID. *Where the time goes*: the median of each "
    "phase migcoord reports under `\"timings\"` in its `--json` output (start-up, connect, plan, checks, "
    "provision, the libvirt migration call and QEMU's own `time_elapsed` within it, verify, other, total); "
    "QEMU's `time_elapsed` of both sides is also read from the destination's completed-job statistics. "
    "Target: ≤ 1.0× the manual procedure.",
    "2. **Planning at scale**: `migcoord evacuate --dry-run --include-inactive --json` to dst and dst2 over N "
    "defined (not running) domains on src — 50, 150, 500 and 2,000 (quick: up to 500) — each with its own "
    "vTPM secret, against a minimal libvirt-python script (run as a process too) making only the calls the "
    "plan needs: list domains (active, inactive), each domain's XML, each referenced secret's lookup + XML "
    "on src and lookup on each destination, free memory and domain capabilities once per destination. The "
    "domains are defined through the libvirt API in the bench process (a few calls in flight), each size "
    "adding to the previous one; their memory is small enough that all of the largest N together take at "
    "most a quarter of the destinations' free memory, so every domain is placed (checked for both sides). "
    "Time and peak RSS (`ru_maxrss` via `os.wait4`) per size for both sides; scaling is "
    "t(N_largest)/t(N_next), against linear (the size ratio, 4.0 for 2,000/500). *Round trips*: at the "
    "smallest and the largest N, a separate untimed run of each side with libvirt client-side RPC logging "
    "(`LIBVIRT_LOG_FILTERS=1:rpc`), counting the `RPC_CLIENT_MSG_TX_QUEUE` lines of type 0 (one per call "
    "sent, keepalives excluded), divided by N; \"per extra domain\" is the difference between the two sizes' "
    "calls divided by the difference in N. Targets: ≤ 1.3× at every size; scaling ≤ 1.1× linear.",
    "3. **Evacuation**: N running guests on src (16 MiB each, the smallest the diskless lab guest boots with "
    "— so that 24 fit any lab host; a fresh set for every run); `migcoord evacuate --parallel 4 "
    "--per-destination 2 --json` to dst and dst2 against the loop an operator would write: "
    "`printf '%s\\n' 'GUEST UUID DST' ... | xargs -P 4 -n 3 sh manual-migrate.sh SRC` (the procedure of part 1 "
    "per guest, 4 at a time, destinations alternating as migcoord places equal guests). The curve: migcoord "
    "at 8, 16 and 24 guests, the xargs loop at 8 and 24 (quick: 8 only). Targets: ≤ 0.9× the xargs loop at "
    "8 guests; time per guest flat from 8 to 24 (t/guest(24) / t/guest(8) ≤ 1.1). Checked: every guest runs "
    "on exactly one destination and no longer on src.",
    "4. **Peak memory**: `ru_maxrss` of the migcoord process (via `os.wait4`) in parts 2 and 3.", "",
    "Every table is printed with the machine it was measured on (CPU model, cores, KVM or TCG as the lab "
    "recorded it, libvirt and QEMU versions).", "",
    "## Reproduce", "",
    "```sh",
    "scripts/bench            # full run: 50/150/500/2000 domains, 7 reps; evacuation 8/16/24 guests",
    "scripts/bench --quick    # 50/150/500 domains, 8 guests, 3 reps: under 3 minutes with the lab's start",
    "scripts/bench --only 2 --reps 1 --sizes 500,2000   # one part, own sizes",
    "scripts/bench --only 0   # start-up only, no lab",
    "```", "",
    "It uses its own lab instance (`MIGCOORD_LAB_DIR=/var/tmp/migcoord-lab-bench`, "
    "`MIGCOORD_LAB_FIRST_ADDR=71`, i.e. 127.0.0.71-73) unless those are set, brings hosts src,dst,dst2 up if "
    "needed and takes them down afterwards only if it started them. It runs with the project venv (`.venv`, "
    "or `$MIGCOORD_VENV`); matplotlib (extra `bench`) is installed on demand for the plot. Results: "
    "`bench-results.json` (`--out`, with the bench's own time per phase under `phases_s`), this file "
    "(`--markdown`), `benchmarks/planning.png` (`--plot`); `scripts/bench --render bench-results.json` redraws "
    "the tables, this file and the plot from saved results.", "",
]
