"""Benchmarks for migcoord on the real lab (scripts/lab): measure, never assert.

    scripts/bench [--quick] [--out bench-results.json] [--only 0,1,2,3] [--reps N]

Parts (each side by side, alternating A/B, medians over repetitions, reported as ratios):
  0  start-up: `migcoord --version` and `check` vs `python -c 'import libvirt'` (no lab;
     labkit/bench/startup.py, skipped when that module is missing)
  1  single migration: `migcoord migrate --json` (a new process each time) vs the manual virsh
     procedure (manual-migrate.sh); where migcoord's time goes (its "timings", when reported)
  2  planning at scale: `migcoord evacuate --dry-run --include-inactive --json` over N defined
     domains vs a minimal libvirt-python script making only the calls the plan needs;
     plus libvirt RPC round trips per domain (client-side libvirt RPC log)
  3  evacuation: running guests, `migcoord evacuate --parallel 4 --per-destination 2` to dst and
     dst2 vs the operator's loop `xargs -P 4` over manual-migrate.sh; the time per guest at
     8, 16, 24 guests
  4  peak memory (ru_maxrss via os.wait4) of the migcoord process in 2 and 3

The lab it uses is its own: MIGCOORD_LAB_DIR=/var/tmp/migcoord-lab-bench and
MIGCOORD_LAB_FIRST_ADDR=71 (127.0.0.71-73) unless the caller sets them. It brings the hosts
src,dst,dst2 up if needed and takes them down at the end only if it started them. Each part
removes the domains and secrets it made. The code measured is this checkout's: the measured
`python -m coordinator` processes get it first on PYTHONPATH (checked before the first part).

Writes the JSON results (--out), BENCHMARKS.md (--markdown) and benchmarks/planning.png
(--plot; matplotlib is installed into the venv on demand, extra `bench`; without it the
table is still printed).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labkit.bench import labops
from labkit.bench.figures import machine, markdown, plot, tables
from labkit.bench.measure import PY, say
from labkit.bench.parts import part0_startup, part1_single, part2_planning, part3_evacuate, warm_up
from labkit.client import HOSTS, ROOT, Lab, run_lab

LAB_TIMEOUT = 600  # seconds, for each `scripts/lab` command (up of three hosts included)
PARTS = ("0", "1", "2", "3")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="short run (< 3 min): 50/150/500 domains, 8 guests; 3 repetitions (part 3: 2)")
    p.add_argument("--out", type=Path, default=Path("bench-results.json"), help="JSON results (%(default)s)")
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md",
                   help="write the figures here (default BENCHMARKS.md); '-' to skip")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "planning.png",
                   help="planning plot PNG (default benchmarks/planning.png)")
    p.add_argument("--note", default="", help="a remark for BENCHMARKS.md (e.g. 'machine under load')")
    p.add_argument("--only", default=",".join(PARTS),
                   help="parts to run, e.g. 2 or 0,1,3 (4 comes with 2 and 3; default all)")
    p.add_argument("--reps", type=int,
                   help="repetitions for every part (default 7; part 3: 5 at 8 guests, 3 at more; "
                        "part 0: 20; --quick: 3, part 3: 2, part 0: 10)")
    p.add_argument("--sizes", help="planning domain counts, comma-separated (default 50,150,500,2000; "
                                   "--quick 50,150,500)")
    p.add_argument("--guests", help="evacuation guest counts, comma-separated: the curve; the xargs loop runs "
                                    "at the first and the last (default 8,16,24; --quick 8)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="run nothing: print the tables, write --markdown and --plot from saved results")
    return p


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def evacuation_plan(guests: list[int], reps: int | None, quick: bool) -> list[tuple[int, bool, int]]:
    """(guests, with the xargs loop too, repetitions) per point of part 3's curve: the loop runs at
    the first and the last count; the first count (the headline ratio) gets the most repetitions."""
    plan = []
    for i, n in enumerate(guests):
        r = reps or (2 if quick else 5 if i == 0 else 3)
        plan.append((n, i == 0 or i == len(guests) - 1, r))
    return plan


def bring_up(labx: Lab) -> bool:
    """The bench's own lab hosts, brought up unless all of them already run. True if this run
    started the lab (no host was running): then taking it down at the end is this run's job."""
    labx.env = json.loads(run_lab("env", "--json", timeout=LAB_TIMEOUT))
    hosts = labx.env.get("hosts", {})
    if all(hosts.get(h, {}).get("running") for h in HOSTS.split(",")):
        return False
    say(f"bringing up lab hosts {HOSTS} in {os.environ['MIGCOORD_LAB_DIR']}")
    started = not any(h.get("running") for h in hosts.values())
    labx.restart_down_hosts(HOSTS)
    return started


@contextmanager
def phase(res: dict[str, Any], name: str) -> Iterator[None]:
    """Where the bench's own wall time goes (res["phases_s"]): lab up, warm-up, each part."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        res.setdefault("phases_s", {})[name] = round(time.perf_counter() - t0, 1)


def use_this_checkout() -> str:
    """Put this checkout first on PYTHONPATH for every process the bench starts, so that
    `python -m coordinator` runs this tree's code even when the venv's editable install points at
    another checkout; return the file the measured processes import, after checking it is ours."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + old if old else "")
    out = subprocess.run([PY, "-c", "import coordinator; print(coordinator.__file__)"], capture_output=True,
                         text=True, cwd="/", check=True).stdout.strip()
    if Path(out).resolve().parent != (ROOT / "coordinator").resolve():
        raise RuntimeError(f"the measured processes would import {out}, not {ROOT / 'coordinator'}")
    return out


def checkout_commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def run_parts(labx: Lab | None, args: argparse.Namespace, res: dict[str, Any], tmp: Path) -> None:
    parts = selected(args)
    reps = args.reps or (3 if args.quick else 7)
    sizes = numbers(args.sizes) if args.sizes else ([50, 150, 500] if args.quick else [50, 150, 500, 2000])
    guests = numbers(args.guests) if args.guests else ([8] if args.quick else [8, 16, 24])
    if "0" in parts:
        n0 = args.reps or (10 if args.quick else 20)
        with phase(res, "part0"):
            say(f"part 0: start-up, {n0} reps")
            res["startup"] = part0_startup(n0)
            if "skipped" in res["startup"]:
                say(f"part 0 skipped: {res['startup']['skipped']}")
    if labx is None:
        return
    if parts & {"1", "3"}:
        with phase(res, "warm_up"):
            say("warm-up: one untimed migration to each destination")
            warm_up(labx)
    if "1" in parts:
        with phase(res, "part1"):
            say(f"part 1: single migration, {reps} reps per side")
            res["single"] = part1_single(labx, reps, tmp)
    if "2" in parts:
        with phase(res, "part2"):
            say(f"part 2: planning over {sizes} defined domains, {reps} reps per side")
            res["planning"] = part2_planning(labx, sizes, reps, tmp)
    if "3" in parts:
        plan = evacuation_plan(guests, args.reps, args.quick)
        with phase(res, "part3"):
            say(f"part 3: evacuation, (guests, with xargs loop, reps): {plan}")
            res["evacuation"] = part3_evacuate(labx, plan, tmp)


def selected(args: argparse.Namespace) -> set[str]:
    return {x.strip() for x in args.only.split(",") if x.strip()}


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    p = parser()
    args = p.parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text())
        return report(saved, args, rc=0 if "error" not in saved else 1, write_json=False)
    unknown = selected(args) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s) {', '.join(sorted(unknown))}: choose from {', '.join(PARTS)}")
    needs_lab = bool(selected(args) & {"1", "2", "3"})
    if needs_lab and os.geteuid() != 0:
        p.error("the lab needs root")
    # NOTE: set before the first `scripts/lab` command: the lab reads them from the environment.
    os.environ.setdefault("MIGCOORD_LAB_DIR", "/var/tmp/migcoord-lab-bench")
    os.environ.setdefault("MIGCOORD_LAB_FIRST_ADDR", "71")
    res: dict[str, Any] = {"quick": args.quick, "date": datetime.datetime.now(datetime.UTC)
                           .strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "commit": checkout_commit()}
    if needs_lab:
        res["lab_dir"] = os.environ["MIGCOORD_LAB_DIR"]
    labx = Lab(env={}, lab_timeout=LAB_TIMEOUT) if needs_lab else None
    started = False
    tmp = Path(tempfile.mkdtemp(prefix="migcoord-bench-"))
    rc = 0
    try:
        res["code_under_test"] = use_this_checkout()
        if labx is not None:
            with phase(res, "lab_up"):
                started = bring_up(labx)
                labops.wipe(labx)
            res["lab_accel"] = labx.env.get("accel")
            res["lab_cpu"] = (labx.env.get("cpu") or {}).get("name")
            res["lab_hosts"] = {n: {"stack": h.get("stack"), **(h.get("versions") or {})}
                                for n, h in (labx.env.get("hosts") or {}).items()}
        run_parts(labx, args, res, tmp)
    except Exception as e:
        say(f"error: {type(e).__name__}: {e}")
        res["error"] = f"{type(e).__name__}: {e}"
        rc = 1
    finally:
        with phase(res, "lab_down"):
            if labx is not None:
                try:
                    if labx.env:
                        labops.wipe(labx)
                except Exception as e:
                    say(f"cleanup: {e}")
                labx.close()
            if started:
                say("taking the lab down (this run started it)")
                run_lab("down", check=False, timeout=LAB_TIMEOUT)
        shutil.rmtree(tmp, ignore_errors=True)
    res["phases_s"]["total"] = round(time.perf_counter() - t_start, 1)
    return report(res, args, rc)


def report(res: dict[str, Any], args: argparse.Namespace, rc: int, write_json: bool = True) -> int:
    text = tables(res)
    print(text)
    if "phases_s" in res:
        say("bench wall time by phase: " + ", ".join(f"{k} {v:.1f}s" for k, v in res["phases_s"].items()))
    if write_json:
        args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
        say(f"results written to {args.out}")
    if rc == 0:
        plotted = plot(res, args.plot)
        if str(args.markdown) != "-":
            rel = os.path.relpath(args.plot, args.markdown.resolve().parent) if plotted else None
            old = args.markdown.read_text() if args.markdown.exists() else ""
            args.markdown.write_text(markdown(res, rel, args.note, old) + "\n")
            say(f"figures written to {args.markdown}" + (f", plot {args.plot}" if plotted else ""))
    return rc
