"""The benchmark parts: 0 start-up, 1 single migration (with where migcoord's time goes),
2 planning at scale, 3 evacuation against the hand-made parallel loop (4, peak memory, is measured
within 2 and 3). Each side by side, alternating A/B."""
from __future__ import annotations

import importlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from labkit.bench import labops
from labkit.bench.baseline import MINIMAL_PLAN, manual_migrate, xargs_pipeline
from labkit.bench.measure import PY, count_rpc, median, must, order, run_timed, say
from labkit.client import Lab

SINGLE_GUEST_MIB = 128  # part 1: the `scripts/lab vm` default guest
# Part 3: the smallest memory the lab guest boots with (diskless: SeaBIOS reaches the same halt
# with 8 MiB as with 128), so that 24 guests fit the lab hosts whatever machine they run on.
EVAC_GUEST_MIB = 16
PARALLEL = 4  # part 3: `--parallel 4 --per-destination 2` and `xargs -P 4`
PER_DESTINATION = 2
# The phases `migcoord migrate --json` reports under "timings", in the order they happen.
TIMING_KEYS = ("startup", "connect", "plan", "checks", "provision", "migration", "qemu_elapsed",
               "verify", "other", "total")


def part0_startup(reps: int) -> dict[str, Any]:
    """`migcoord --version` and `check` start-up against `python -c 'import libvirt'`, measured by
    labkit/bench/startup.py (measure_startup(python, reps) → medians in seconds); no lab needed.
    Without that module the part is reported as skipped."""
    try:
        mod = importlib.import_module("labkit.bench.startup")
    except ModuleNotFoundError as e:
        if e.name != "labkit.bench.startup":
            raise
        return {"skipped": "scripts/labkit/bench/startup.py is missing (it comes with the start-up work)"}
    r: dict[str, Any] = dict(mod.measure_startup(PY, reps))
    r["reps"] = reps
    base = r.get("import_libvirt")
    for k in ("version", "check"):
        if isinstance(r.get(k), int | float) and isinstance(base, int | float):
            r[f"{k}_over_import_libvirt_s"] = r[k] - base
    r["target_over_s_max"] = 0.05
    return r


def warm_up(labx: Lab) -> None:
    """Untimed: one manual migration to each destination (both at once), so that no timed run pays
    for a cold lab (the daemons' first QEMU/swtpm start and capability probes, ~5 s a host).

    NOTE: the two guests start on the cold source one after the other: two first vTPM starts at once
    on a host race in libvirt 9.0 ("failed to create directory '/run/libvirt/qemu/swtpm': File exists",
    seen on a quiet machine); each destination then receives one migration only."""
    for h in labx.env["hosts"]:
        labx.conn(h)
    sids = {d: labx.define_fast("src", f"bench0-warmup-{d}", SINGLE_GUEST_MIB, start=True) for d in ("dst", "dst2")}
    with ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(lambda d: manual_migrate(labx.uri("src"), labx.uri(d), f"bench0-warmup-{d}", sids[d]),
                    ("dst", "dst2")))
    labops.wipe(labx)


def timings_of(stdout: bytes) -> dict[str, float | None] | None:
    """The "timings" object of `migcoord migrate --json` output (seconds or null per phase), or
    None when this migcoord does not report one (or the output is not JSON)."""
    try:
        t = json.loads(stdout).get("timings")
    except (ValueError, AttributeError):
        return None
    if not isinstance(t, dict):
        return None
    return {k: (float(v) if isinstance(v, int | float) else None) for k, v in t.items()}


def median_timings(per_rep: list[dict[str, float | None]]) -> dict[str, float | None] | None:
    """Per phase, the median over the repetitions that reported it (known phases first)."""
    if not per_rep:
        return None
    keys = [k for k in TIMING_KEYS if any(k in t for t in per_rep)]
    keys += sorted({k for t in per_rep for k in t} - set(keys))
    out: dict[str, float | None] = {}
    for k in keys:
        xs = [v for t in per_rep if (v := t.get(k)) is not None]
        out[k] = median(xs) if xs else None
    return out


def part1_single(labx: Lab, reps: int, tmp: Path) -> dict[str, Any]:
    src, dst = labx.uri("src"), labx.uri("dst")
    times: dict[str, list[float]] = {"A": [], "B": []}
    qemu: dict[str, list[float]] = {"A": [], "B": []}
    rss: list[int] = []
    timings: list[dict[str, float | None]] = []
    # NOTE: the migrated guests stay on dst until the part ends (then removed all at once): removing a
    # running guest takes ~2 s on the lab (see labops), more than creating the next one.
    made: tuple[list[str], list[str]] = ([], [])
    for rep in range(reps):
        for side in order(rep):
            name = f"bench1-{side.lower()}{rep}"
            sid = labops.create_guests(labx, "src", [name], SINGLE_GUEST_MIB, start=True)[0]  # not timed
            made[0].append(name)
            made[1].append(sid)
            if side == "A":
                r = must(run_timed([PY, "-m", "coordinator", "migrate", name, "--from", src, "--to", dst, "--json",
                                    "--journal", str(tmp / f"journal-{name}.jsonl"),
                                    "--lock-dir", str(tmp / "locks")]), f"migcoord migrate {name}")
                times["A"].append(r["wall_s"])
                rss.append(r["maxrss_kib"])
                if (t := timings_of(r["stdout"])) is not None:
                    timings.append(t)
            else:
                t0 = time.perf_counter()
                manual_migrate(src, dst, name, sid)
                times["B"].append(time.perf_counter() - t0)
            if labx.where(name) != {"dst": "running"}:
                raise RuntimeError(f"part 1: {name} is not (only) running on dst: {labx.where(name)}")
            if (q := labops.qemu_elapsed_s(labx, "dst", name)) is not None:
                qemu[side].append(q)
            say(f"part 1 rep {rep + 1}/{reps} {'migcoord' if side == 'A' else 'manual'}: {times[side][-1]:.2f}s")
    labops.remove(labx, *made)
    m, b = median(times["A"]), median(times["B"])
    return {"reps": reps, "migcoord_s": times["A"], "manual_s": times["B"],
            "migcoord_median_s": m, "manual_median_s": b, "ratio": m / b, "target_ratio_max": 1.0,
            "migcoord_maxrss_kib_max": max(rss) if rss else None,
            "qemu_elapsed_median_s": {"migcoord": median(qemu["A"]) if qemu["A"] else None,
                                      "manual": median(qemu["B"]) if qemu["B"] else None},
            "timings_per_rep": timings, "timings_median_s": median_timings(timings)}


def part2_planning(labx: Lab, sizes: list[int], reps: int, tmp: Path) -> dict[str, Any]:
    src, dst, dst2 = labx.uri("src"), labx.uri("dst"), labx.uri("dst2")
    sizes = sorted(set(sizes))
    minimal = tmp / "minimal_plan.py"
    minimal.write_text(MINIMAL_PLAN)
    argv_a = [PY, "-m", "coordinator", "evacuate", "--from", src, "--to", dst, "--to", dst2,
              "--dry-run", "--include-inactive", "--json", "--journal", str(tmp / "journal-plan.jsonl"),
              "--lock-dir", str(tmp / "locks")]
    argv_b = [PY, str(minimal), src, dst, dst2]
    results: list[dict[str, Any]] = []
    # NOTE: every domain must fit the destinations' free memory (virNodeGetFreeMemory; the lab hosts
    # share this machine's, ~3.7 GiB each on the development machine), or the plan is shorter than
    # N: all N_max domains take at most a quarter of what the two destinations report, whatever N.
    free_mib = sum(labx.conn(h).getFreeMemory() for h in ("dst", "dst2")) // 2**20
    mem_mib = max(1, min(32, free_mib // 4 // max(sizes)))
    labops.wipe(labx)
    defined = 0
    for n in sizes:
        # The domains of the smaller sizes stay: each size adds only its new ones.
        t0 = time.perf_counter()
        labops.create_guests(labx, "src", [f"bench2-{i:05d}" for i in range(defined, n)], mem_mib, start=False)
        say(f"part 2: defined {n - defined} more domains with vTPM secrets on src "
            f"(now {n}) in {time.perf_counter() - t0:.1f}s")
        if defined == 0:
            for argv in (argv_a, argv_b):  # warm-up, not timed (the daemons' first capability probes)
                must(run_timed(argv), "planning warm-up")
        defined = n
        times: dict[str, list[float]] = {"A": [], "B": []}
        rss: dict[str, list[int]] = {"A": [], "B": []}
        for rep in range(reps):
            for side in order(rep):
                r = must(run_timed(argv_a if side == "A" else argv_b), f"planning side {side} n={n}")
                doms = json.loads(r["stdout"])["domains"]
                placed = sum(1 for d in doms if d.get("destination"))
                if placed != n:
                    raise RuntimeError(f"part 2: side {side} placed {placed} of {n} domains")
                times[side].append(r["wall_s"])
                rss[side].append(r["maxrss_kib"])
            say(f"part 2 n={n} rep {rep + 1}/{reps}: migcoord {times['A'][-1]:.2f}s, "
                f"minimal {times['B'][-1]:.2f}s")
        row: dict[str, Any] = {
            "n": n, "migcoord_s": times["A"], "minimal_s": times["B"],
            "migcoord_median_s": median(times["A"]), "minimal_median_s": median(times["B"]),
            "ratio": median(times["A"]) / median(times["B"]),
            "migcoord_maxrss_kib_max": max(rss["A"]), "minimal_maxrss_kib_max": max(rss["B"])}
        # Round trips: the smallest and the largest size suffice for calls per domain and per extra domain.
        if n in (sizes[0], sizes[-1]):
            rpc_a, calls_a = count_rpc(argv_a, tmp, f"migcoord-{n}")
            rpc_b, calls_b = count_rpc(argv_b, tmp, f"minimal-{n}")
            row.update({"migcoord_rpc_calls": rpc_a, "minimal_rpc_calls": rpc_b,
                        "migcoord_rpc_per_domain": rpc_a / n, "minimal_rpc_per_domain": rpc_b / n,
                        "migcoord_rpc_by_proc": dict(calls_a.most_common(12)),
                        "minimal_rpc_by_proc": dict(calls_b.most_common(12))})
        results.append(row)
    labops.wipe(labx)
    return planning_summary(results, reps, mem_mib)


def planning_summary(results: list[dict[str, Any]], reps: int, mem_mib: int) -> dict[str, Any]:
    """Scaling between the two largest sizes (t(2000)/t(500) in the full run) against linear
    (their size ratio), and RPC calls per extra domain between the smallest and largest size."""
    small, large = results[0], results[-1]
    prev = results[-2] if len(results) > 1 else large
    linear = large["n"] / prev["n"]
    out: dict[str, Any] = {
        "reps": reps, "sizes": [r["n"] for r in results], "domain_memory_mib": mem_mib, "by_size": results,
        "scaling_sizes": [prev["n"], large["n"]],
        "scaling_migcoord": large["migcoord_median_s"] / prev["migcoord_median_s"],
        "scaling_minimal": large["minimal_median_s"] / prev["minimal_median_s"],
        "scaling_linear": linear, "target_ratio_max": 1.3, "target_scaling_max": 1.1 * linear,
        "migcoord_rpc_marginal_per_domain": None, "minimal_rpc_marginal_per_domain": None}
    if large["n"] != small["n"] and "migcoord_rpc_calls" in small and "migcoord_rpc_calls" in large:
        for side in ("migcoord", "minimal"):
            out[f"{side}_rpc_marginal_per_domain"] = \
                (large[f"{side}_rpc_calls"] - small[f"{side}_rpc_calls"]) / (large["n"] - small["n"])
    return out


def _evacuate_once(labx: Lab, side: str, names: list[str], sids: list[str], tmp: Path,
                   label: str) -> dict[str, Any]:
    """One timed evacuation of the guests on src: migcoord (A) or the xargs loop (B)."""
    src, dsts = labx.uri("src"), [labx.uri("dst"), labx.uri("dst2")]
    if side == "A":
        journal = tmp / f"journal-evac-{label}.jsonl"
        argv = [PY, "-m", "coordinator", "evacuate", "--from", src, "--to", dsts[0], "--to", dsts[1],
                "--parallel", str(PARALLEL), "--per-destination", str(PER_DESTINATION), "--json",
                "--journal", str(journal), "--lock-dir", str(tmp / "locks")]
        launched = time.time()
        r = must(run_timed(argv), "migcoord evacuate")
        r["profile"] = journal_profile(journal, launched, time.time())
        return r
    # Destinations alternate, as migcoord places equal guests (most free memory first).
    jobs = [(n, s, dsts[i % 2]) for i, (n, s) in enumerate(zip(names, sids, strict=True))]
    return must(run_timed(["sh", "-c", xargs_pipeline(src, jobs, PARALLEL)]), "xargs loop")


def journal_profile(journal: Path, launched: float, ended: float) -> dict[str, float] | None:
    """Where one `migcoord evacuate` run's wall time went, from its journal's timestamps (wall
    clock, like ``launched``/``ended``): start-up, connections and the plan (launch → the
    "evacuation-plan" event); per guest, the mean of checks + lease + provisioning ("migration-start"
    → "migration-attempt") and of the libvirt migration + verification ("migration-attempt" →
    "migration-done"); the first guest's checks (plan → its "migration-start"); the wait for the
    last guest (first → last "migration-done"); and exit (last event → process end)."""
    try:
        events = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    first: dict[str, dict[str, float]] = {}
    for e in events:
        if isinstance(e.get("ts"), int | float):
            first.setdefault(str(e.get("event")), {}).setdefault(str(e.get("uuid", "")), float(e["ts"]))
    plan = first.get("evacuation-plan", {}).get("")
    starts, attempts, dones = (first.get(k, {}) for k in ("migration-start", "migration-attempt", "migration-done"))
    both = [u for u in starts if u in attempts and u in dones]
    if plan is None or not both:
        return None
    last_ts = max(float(e["ts"]) for e in events if isinstance(e.get("ts"), int | float))
    return {"to_plan_s": plan - launched,
            "first_checks_s": min(starts[u] for u in both) - plan,
            "per_guest_prepare_s": sum(attempts[u] - starts[u] for u in both) / len(both),
            "per_guest_migrate_verify_s": sum(dones[u] - attempts[u] for u in both) / len(both),
            "done_spread_s": max(dones[u] for u in both) - min(dones[u] for u in both),
            "exit_s": ended - last_ts, "guests": float(len(both))}


def part3_evacuate(labx: Lab, plan: list[tuple[int, bool, int]], tmp: Path) -> dict[str, Any]:
    """``plan``: (guests, with the xargs baseline too, repetitions) per point of the curve; the
    first point is the headline ratio."""
    curve: list[dict[str, Any]] = []
    rss: list[int] = []
    previous: tuple[list[str], list[str]] | None = None
    for guests, with_baseline, reps in plan:
        times: dict[str, list[float]] = {"A": [], "B": []}
        profiles: list[dict[str, float]] = []
        for rep in range(reps):
            for side in order(rep) if with_baseline else ("A",):
                label = f"{guests}{side.lower()}{rep}"
                names = [f"bench3-{label}-{i:02d}" for i in range(guests)]
                t0 = time.perf_counter()
                sids = labops.replace_guests(labx, "src", names, EVAC_GUEST_MIB, previous)  # not timed
                previous = (names, sids)
                say(f"part 3: started {guests} guests on src in {time.perf_counter() - t0:.1f}s")
                r = _evacuate_once(labx, side, names, sids, tmp, label)
                times[side].append(r["wall_s"])
                if side == "A":
                    rss.append(r["maxrss_kib"])
                    if r.get("profile"):
                        profiles.append(r["profile"])
                where = {n: labx.where(n) for n in names}
                bad = {n: w for n, w in where.items() if "src" in w or list(w.values()) != ["running"]}
                if bad:
                    raise RuntimeError(f"part 3 side {side}: not moved: {bad}")
                say(f"part 3 {guests} guests rep {rep + 1}/{reps} "
                    f"{'migcoord evacuate' if side == 'A' else f'xargs -P {PARALLEL} loop'}: {times[side][-1]:.2f}s")
        m = median(times["A"])
        b = median(times["B"]) if times["B"] else None
        curve.append({"guests": guests, "reps": reps, "migcoord_s": times["A"], "xargs_s": times["B"],
                      "migcoord_median_s": m, "migcoord_per_guest_s": m / guests,
                      "xargs_median_s": b, "xargs_per_guest_s": b / guests if b else None,
                      "ratio": m / b if b else None, "profile_per_rep": profiles,
                      "profile_median": {k: median([p[k] for p in profiles]) for k in profiles[0]}
                      if profiles else None})
    if previous:
        labops.remove(labx, *previous)
    return evacuation_summary(curve, max(rss) if rss else None)


def evacuation_summary(curve: list[dict[str, Any]], maxrss_kib: int | None) -> dict[str, Any]:
    """The headline (the first point, 8 guests: migcoord / xargs loop) and the curve's flatness:
    time per guest at the largest count / at the first."""
    head, last = curve[0], curve[-1]
    return {"guests": head["guests"], "parallel": PARALLEL, "per_destination": PER_DESTINATION,
            "guest_memory_mib": EVAC_GUEST_MIB, "curve": curve,
            "migcoord_median_s": head["migcoord_median_s"], "xargs_median_s": head["xargs_median_s"],
            "ratio": head["ratio"], "target_ratio_max": 0.9,
            "flatness": last["migcoord_per_guest_s"] / head["migcoord_per_guest_s"]
            if last["guests"] != head["guests"] else None,
            "flatness_guests": [head["guests"], last["guests"]], "target_flatness_max": 1.1,
            "migcoord_maxrss_kib_max": maxrss_kib}
