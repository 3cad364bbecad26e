"""The cron and systemd examples in scripts/examples are commands migcoord actually accepts."""
from __future__ import annotations

import shlex
from pathlib import Path

from coordinator.cli.main import build_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "scripts" / "examples"


def _parse(cmdline: str):
    argv = shlex.split(cmdline)
    assert argv[0].endswith("migcoord")
    return build_parser().parse_args(argv[1:])


def test_crontab_line_parses():
    line = next(ln for ln in (EXAMPLES / "crontab").read_text().splitlines() if ln and not ln.startswith("#"))
    fields = line.split(None, 6)
    command = fields[6].split(">>")[0]
    args = _parse(command)
    assert args.command == "evacuate" and len(args.dsts) == 2 and args.report


def test_systemd_unit_parses_with_its_environment():
    unit = (EXAMPLES / "migcoord-evacuate@.service").read_text()
    exec_start = next(ln.split("=", 1)[1] for ln in unit.splitlines() if ln.startswith("ExecStart="))
    env = {k: v for k, v in (ln.lstrip("# ").split("=", 1) for ln in unit.splitlines()
                             if ln.startswith("#   MIGCOORD_"))}
    for k, v in env.items():
        exec_start = exec_start.replace(f"${k}", v)
    args = _parse(exec_start.replace("%i", "hv1"))
    assert args.command == "evacuate" and args.src == "qemu+ssh://hv1/system" and len(args.dsts) == 2
    assert "[Timer]" in (EXAMPLES / "migcoord-evacuate@.timer").read_text()
