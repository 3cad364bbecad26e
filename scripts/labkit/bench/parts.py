"""The benchmark parts: 1 single migration, 2 planning at scale, 3 evacuation throughput
(4, peak memory, is measured within 2 and 3). Each side by side, alternating A/B."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from labkit.bench.baseline import MINIMAL_PLAN, manual_migrate
from labkit.bench.measure import PY, count_rpc, median, must, order, run_timed, say
from labkit.client import Lab


def warm_up(labx: Lab, tmp: Path) -> None:
    """Untimed: one manual migration to each destination, so that no timed run pays for a cold
    lab (the daemons' first QEMU/swtpm start and capability probes)."""
    for dst in ("dst", "dst2"):
        labx.wipe()
        name = f"bench0-warmup-{dst}"
        info = labx.vm(name, on="src")
        manual_migrate(labx.uri("src"), labx.uri(dst), name, info["secret"], tmp)
    labx.wipe()


def part1_single(labx: Lab, reps: int, tmp: Path) -> dict[str, Any]:
    src, dst = labx.uri("src"), labx.uri("dst")
    times: dict[str, list[float]] = {"migcoord": [], "manual": []}
    rss: list[int] = []
    for rep in range(reps):
        for side in order(rep):
            labx.wipe()
            name = f"bench1-{side.lower()}{rep}"
            info = labx.vm(name, on="src")  # not timed
            if side == "A":
                r = must(run_timed([PY, "-m", "coordinator", "migrate", name, "--from", src, "--to", dst,
                                    "--journal", str(tmp / f"journal-{name}.jsonl"),
                                    "--lock-dir", str(tmp / "locks")]), f"migcoord migrate {name}")
                times["migcoord"].append(r["wall_s"])
                rss.append(r["maxrss_kib"])
            else:
                t0 = time.perf_counter()
                manual_migrate(src, dst, name, info["secret"], tmp)
                times["manual"].append(time.perf_counter() - t0)
            if labx.where(name) != {"dst": "running"}:
                raise RuntimeError(f"part 1: {name} is not (only) running on dst: {labx.where(name)}")
            say(f"part 1 rep {rep + 1}/{reps} {'migcoord' if side == 'A' else 'manual'}: "
                f"{(times['migcoord'] if side == 'A' else times['manual'])[-1]:.2f}s")
    labx.wipe()
    m, b = median(times["migcoord"]), median(times["manual"])
    return {"reps": reps, "migcoord_s": times["migcoord"], "manual_s": times["manual"],
            "migcoord_median_s": m, "manual_median_s": b, "ratio": m / b, "target_ratio_max": 1.0,
            "migcoord_maxrss_kib_max": max(rss) if rss else None}


def part2_planning(labx: Lab, sizes: list[int], reps: int, tmp: Path) -> dict[str, Any]:
    src, dst, dst2 = labx.uri("src"), labx.uri("dst"), labx.uri("dst2")
    minimal = tmp / "minimal_plan.py"
    minimal.write_text(MINIMAL_PLAN)
    argv_a = [PY, "-m", "coordinator", "evacuate", "--from", src, "--to", dst, "--to", dst2,
              "--dry-run", "--include-inactive", "--json", "--journal", str(tmp / "journal-plan.jsonl"),
              "--lock-dir", str(tmp / "locks")]
    argv_b = [PY, str(minimal), src, dst, dst2]
    results: list[dict[str, Any]] = []
    # NOTE: small guests, so that every domain fits the destinations' free memory (libvirt's
    # virNodeGetFreeMemory; on the development machine only ~3.7 GiB per lab host): at most half
    # of the two destinations' free memory for the largest N, at most 32 MiB each.
    free_mib = sum(labx.conn(h).getFreeMemory() for h in ("dst", "dst2")) // 2**20
    mem_mib = max(1, min(32, free_mib // 2 // max(sizes)))
    for n in sizes:
        labx.wipe()
        t0 = time.perf_counter()
        for i in range(n):
            labx.define_fast("src", f"bench2-{i:04d}", mem_mib, start=False)
        say(f"part 2: defined {n} domains with vTPM secrets on src in {time.perf_counter() - t0:.1f}s")
        for argv in (argv_a, argv_b):  # warm-up, not timed (the daemons' first capability probes)
            must(run_timed(argv), "planning warm-up")
        times: dict[str, list[float]] = {"A": [], "B": []}
        rss: list[int] = []
        for rep in range(reps):
            for side in order(rep):
                r = must(run_timed(argv_a if side == "A" else argv_b), f"planning side {side} n={n}")
                doms = json.loads(r["stdout"])["domains"]
                placed = sum(1 for d in doms if d.get("destination"))
                if placed != n:
                    raise RuntimeError(f"part 2: side {side} placed {placed} of {n} domains")
                times[side].append(r["wall_s"])
                if side == "A":
                    rss.append(r["maxrss_kib"])
            say(f"part 2 n={n} rep {rep + 1}/{reps}: migcoord {times['A'][-1]:.2f}s, "
                f"minimal {times['B'][-1]:.2f}s")
        rpc_a, calls_a = count_rpc(argv_a, tmp, f"migcoord-{n}")
        rpc_b, calls_b = count_rpc(argv_b, tmp, f"minimal-{n}")
        results.append({"n": n, "migcoord_s": times["A"], "minimal_s": times["B"],
                        "migcoord_median_s": median(times["A"]), "minimal_median_s": median(times["B"]),
                        "ratio": median(times["A"]) / median(times["B"]),
                        "migcoord_rpc_calls": rpc_a, "minimal_rpc_calls": rpc_b,
                        "migcoord_rpc_per_domain": rpc_a / n, "minimal_rpc_per_domain": rpc_b / n,
                        "migcoord_rpc_by_proc": dict(calls_a.most_common(12)),
                        "minimal_rpc_by_proc": dict(calls_b.most_common(12)),
                        "migcoord_maxrss_kib_max": max(rss)})
    labx.wipe()
    small, large = results[0], results[-1]
    out = {"reps": reps, "sizes": sizes, "domain_memory_mib": mem_mib, "by_size": results,
           "scaling_migcoord": large["migcoord_median_s"] / small["migcoord_median_s"],
           "scaling_minimal": large["minimal_median_s"] / small["minimal_median_s"],
           "target_ratio_max": 1.3, "target_scaling_max": 5.5 * (large["n"] / small["n"]) / 5.0,
           "migcoord_rpc_marginal_per_domain":
               (large["migcoord_rpc_calls"] - small["migcoord_rpc_calls"]) / (large["n"] - small["n"])
               if large["n"] != small["n"] else None,
           "minimal_rpc_marginal_per_domain":
               (large["minimal_rpc_calls"] - small["minimal_rpc_calls"]) / (large["n"] - small["n"])
               if large["n"] != small["n"] else None}
    return out


def part3_evacuate(labx: Lab, guests: int, reps: int, tmp: Path) -> dict[str, Any]:
    src, dsts = labx.uri("src"), [labx.uri("dst"), labx.uri("dst2")]
    times: dict[str, list[float]] = {"A": [], "B": []}
    rss: list[int] = []
    for rep in range(reps):
        for side in order(rep):
            labx.wipe()
            names, sids = [], []
            t0 = time.perf_counter()
            for i in range(guests):  # fresh guests for each side; not timed
                name = f"bench3-{side.lower()}{rep}-{i}"
                sids.append(labx.define_fast("src", name, 128, start=True))
                names.append(name)
            say(f"part 3: started {guests} guests on src in {time.perf_counter() - t0:.1f}s")
            if side == "A":
                r = must(run_timed([PY, "-m", "coordinator", "evacuate", "--from", src, "--to", dsts[0],
                                    "--to", dsts[1], "--parallel", "4", "--per-destination", "2", "--json",
                                    "--journal", str(tmp / f"journal-evac-{rep}.jsonl"),
                                    "--lock-dir", str(tmp / "locks")]), "migcoord evacuate")
                times["A"].append(r["wall_s"])
                rss.append(r["maxrss_kib"])
            else:
                t0 = time.perf_counter()
                for i, (name, sid) in enumerate(zip(names, sids, strict=True)):
                    manual_migrate(src, dsts[i % 2], name, sid, tmp)
                times["B"].append(time.perf_counter() - t0)
            where = {n: labx.where(n) for n in names}
            bad = {n: w for n, w in where.items() if "src" in w or list(w.values()) != ["running"]}
            if bad:
                raise RuntimeError(f"part 3 side {side}: not moved: {bad}")
            say(f"part 3 rep {rep + 1}/{reps} {'migcoord evacuate' if side == 'A' else 'manual loop'}: "
                f"{times[side][-1]:.2f}s")
    labx.wipe()
    m, b = median(times["A"]), median(times["B"])
    return {"reps": reps, "guests": guests, "migcoord_s": times["A"], "manual_loop_s": times["B"],
            "migcoord_median_s": m, "manual_loop_median_s": b, "ratio": m / b, "target_ratio_max": 0.5,
            "migcoord_maxrss_kib_max": max(rss) if rss else None}
