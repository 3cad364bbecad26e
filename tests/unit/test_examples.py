"""The cron and systemd examples in scripts/examples are commands migcoord actually accepts, with the
example settings file (scripts/examples/config.toml) standing in for /etc/migcoord/config.toml."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from coordinator.cli import invocation
from coordinator.cli.main import build_parser
from coordinator.core.config import parse_file

EXAMPLES = Path(__file__).resolve().parents[2] / "scripts" / "examples"
CONFIG = EXAMPLES / "config.toml"


def _parse(cmdline: str):
    argv = shlex.split(cmdline)
    assert argv[0].endswith("migcoord")
    argv = [str(CONFIG) if a == "/etc/migcoord/config.toml" else a for a in argv[1:]]
    args = build_parser().parse_args(argv)
    return invocation.build(args, build_parser, argv, {})


def test_example_config_is_valid():
    fc = parse_file(str(CONFIG), tomllib.loads(CONFIG.read_text()))
    assert fc.groups["rack2"] == ("hv2", "hv3") and fc.sources


def test_crontab_line_parses():
    line = next(ln for ln in (EXAMPLES / "crontab").read_text().splitlines() if ln and not ln.startswith("#"))
    fields = line.split(None, 6)
    command = fields[6].split(">>")[0]
    args = _parse(command)
    assert args.command == "evacuate" and args.src == "qemu+ssh://hv1.example.net/system" and len(args.dsts) == 2
    assert str(args.report) == "/var/log/migcoord/evacuate-hv1.example.net.json"
    assert args.metrics_file.name == "migcoord-evacuate-hv1.example.net.prom"
    assert args.syslog and args.quiet


def test_systemd_unit_parses_with_its_environment():
    unit = (EXAMPLES / "migcoord-evacuate@.service").read_text()
    exec_start = next(ln.split("=", 1)[1] for ln in unit.splitlines() if ln.startswith("ExecStart="))
    # systemd word-splits an unbraced $VAR without honouring quotes: the unit must not rely on that
    assert not re.search(r"\$[A-Za-z_]", exec_start), exec_start
    env = dict(ln.split("=", 1)[1].split("=", 1) for ln in unit.splitlines() if ln.startswith("Environment="))
    for k, v in env.items():
        exec_start = exec_start.replace(f"${{{k}}}", shlex.quote(v))
    args = _parse(exec_start.replace("%i", "hv1"))
    assert args.command == "evacuate" and args.src == "qemu+ssh://hv1.example.net/system" and len(args.dsts) == 2
    assert "[Timer]" in (EXAMPLES / "migcoord-evacuate@.timer").read_text()
