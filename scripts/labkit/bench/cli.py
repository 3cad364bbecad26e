"""Benchmarks for migcoord on the real lab (scripts/lab): measure, never assert.

    scripts/bench [--quick] [--out bench-results.json] [--only 1,2,3] [--reps N]

Parts (each side by side, alternating A/B, medians over repetitions, reported as ratios):
  1  single migration: `migcoord migrate` (a new process each time) vs the manual virsh procedure
  2  planning at scale: `migcoord evacuate --dry-run --include-inactive --json` over N defined
     domains vs a minimal libvirt-python script making only the calls the plan needs;
     plus libvirt RPC round trips per domain (client-side libvirt RPC log)
  3  evacuation throughput: 8 running guests, `migcoord evacuate --parallel 4 --per-destination 2`
     to dst and dst2 vs a sequential loop of the manual procedure
  4  peak memory (ru_maxrss via os.wait4) of the migcoord process in 2 and 3

The lab it uses is its own: MIGCOORD_LAB_DIR=/var/tmp/migcoord-lab-bench and
MIGCOORD_LAB_FIRST_ADDR=71 (127.0.0.71-73) unless the caller sets them. It brings the hosts
src,dst,dst2 up if needed and takes them down at the end only if it started them. Every
domain and secret on the three lab hosts is removed between parts.

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
import tempfile
from pathlib import Path
from typing import Any

from labkit.bench.figures import fmt_table, machine, markdown, plot
from labkit.bench.measure import say
from labkit.bench.parts import part1_single, part2_planning, part3_evacuate, warm_up
from labkit.client import HOSTS, ROOT, Lab, run_lab

LAB_TIMEOUT = 600  # seconds, for each `scripts/lab` command (up of three hosts included)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run: 50/150 domains, 3 repetitions")
    p.add_argument("--out", type=Path, default=Path("bench-results.json"), help="JSON results (%(default)s)")
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md",
                   help="write the figures here (default BENCHMARKS.md); '-' to skip")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "planning.png",
                   help="planning plot PNG (default benchmarks/planning.png)")
    p.add_argument("--note", default="", help="a remark for BENCHMARKS.md (e.g. 'machine under load')")
    p.add_argument("--only", default="1,2,3", help="parts to run, e.g. 2 or 1,3 (4 comes with 2 and 3)")
    p.add_argument("--reps", type=int, help="repetitions (default 7, part 3: 5; --quick: 3)")
    p.add_argument("--sizes", help="planning domain counts, comma-separated (default 100,500; --quick 50,150)")
    p.add_argument("--guests", type=int, default=8, help="guests in the evacuation (default 8)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="run nothing: print the table, write --markdown and --plot from saved results")
    return p


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


def run_parts(labx: Lab, args: argparse.Namespace, res: dict[str, Any], tmp: Path) -> None:
    parts = {x.strip() for x in args.only.split(",") if x.strip()}
    reps = args.reps or (3 if args.quick else 7)
    reps3 = args.reps or (3 if args.quick else 5)
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else ([50, 150] if args.quick else [100, 500])
    if parts & {"1", "3"}:
        say("warm-up: one untimed migration to each destination")
        warm_up(labx, tmp)
    if "1" in parts:
        say(f"part 1: single migration, {reps} reps per side")
        res["single"] = part1_single(labx, reps, tmp)
    if "2" in parts:
        say(f"part 2: planning over {sizes} defined domains, {reps} reps per side")
        res["planning"] = part2_planning(labx, sizes, reps, tmp)
    if "3" in parts:
        say(f"part 3: evacuation of {args.guests} guests, {reps3} reps per side")
        res["evacuation"] = part3_evacuate(labx, args.guests, reps3, tmp)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text())
        return report(saved, args, rc=0 if "error" not in saved else 1, write_json=False)
    if os.geteuid() != 0:
        p.error("the lab needs root")
    # NOTE: set before the first `scripts/lab` command: the lab reads them from the environment.
    os.environ.setdefault("MIGCOORD_LAB_DIR", "/var/tmp/migcoord-lab-bench")
    os.environ.setdefault("MIGCOORD_LAB_FIRST_ADDR", "71")
    res: dict[str, Any] = {"quick": args.quick, "date": datetime.datetime.now(datetime.UTC)
                           .strftime("%Y-%m-%d %H:%M UTC"), "lab_dir": os.environ["MIGCOORD_LAB_DIR"],
                           "machine": machine()}
    labx = Lab(env={}, lab_timeout=LAB_TIMEOUT)
    started = False
    tmp = Path(tempfile.mkdtemp(prefix="migcoord-bench-"))
    rc = 0
    try:
        started = bring_up(labx)
        labx.wipe()
        res["lab_accel"] = labx.env.get("accel")
        run_parts(labx, args, res, tmp)
    except Exception as e:
        say(f"error: {type(e).__name__}: {e}")
        res["error"] = f"{type(e).__name__}: {e}"
        rc = 1
    finally:
        try:
            if labx.env:
                labx.wipe()
        except Exception as e:
            say(f"cleanup: {e}")
        labx.close()
        if started:
            say("taking the lab down (this run started it)")
            run_lab("down", check=False, timeout=LAB_TIMEOUT)
        shutil.rmtree(tmp, ignore_errors=True)

    return report(res, args, rc)


def report(res: dict[str, Any], args: argparse.Namespace, rc: int, write_json: bool = True) -> int:
    table = fmt_table(res)
    print(table)
    if write_json:
        args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
        say(f"results written to {args.out}")
    if rc == 0:
        plotted = plot(res, args.plot)
        if str(args.markdown) != "-":
            rel = os.path.relpath(args.plot, args.markdown.resolve().parent) if plotted else None
            args.markdown.write_text(markdown(res, table, rel, args.note) + "\n")
            say(f"figures written to {args.markdown}" + (f", plot {args.plot}" if plotted else ""))
    return rc
