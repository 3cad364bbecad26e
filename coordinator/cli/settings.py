"""The settings file and the environment, applied to parsed arguments.

``apply`` runs right after argparse: it reads the file (``--config`` > ``MIGCOORD_CONFIG`` >
``/etc/migcoord/config.toml`` when present), learns which options the command line really gave,
merges (``core.config.merge``: command line > environment > file > defaults) and writes the
effective values back into the namespace, so the commands read one ``args`` as before. Host
aliases become URIs, ``--to-group`` becomes destinations, and ``[[sources]]`` follow the
command line's value sources.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coordinator.core.config import SPECS, Effective, FileConfig, config_path, merge, parse_file
from coordinator.core.errors import BadInput
from coordinator.core.uris import uri_facts
from coordinator.files.configfile import load_config_file


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for a in parser._actions:  # NOTE: argparse has no public walk over (sub)parsers
        yield a
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _actions(sub)


def given_dests(build: Callable[[], argparse.ArgumentParser], argv: Sequence[str]) -> set[str]:
    """The dests the command line really set: the same argv through a parser whose defaults
    are all suppressed (an option given with its default value still counts as given)."""
    p = build()
    for a in _actions(p):
        if not a.required and a.dest != "help":
            a.default = argparse.SUPPRESS
    return set(vars(p.parse_args(list(argv))))


def load(cli_path: str | None, environ: Mapping[str, str]) -> FileConfig | None:
    path, required = config_path(cli_path, environ)
    if not required and not os.path.exists(path):
        return None
    return parse_file(path, load_config_file(Path(path)))


def effective(args: argparse.Namespace, given: set[str], environ: Mapping[str, str]) -> Effective:
    cli: dict[str, Any] = {}
    for spec in SPECS:
        if spec.dest in given:
            v = getattr(args, spec.dest)
            cli[spec.key] = str(v) if isinstance(v, Path) else v
    return merge(load(getattr(args, "config", None), environ), environ, cli)


def apply(args: argparse.Namespace, build: Callable[[], argparse.ArgumentParser], argv: Sequence[str],
          environ: Mapping[str, str] | None = None) -> Effective:
    """Fill ``args`` with the effective settings; returns them (``config show`` prints them)."""
    env = os.environ if environ is None else environ
    eff = effective(args, given_dests(build, argv), env)
    for spec in SPECS:
        if hasattr(args, spec.dest):
            v = eff[spec.key]
            setattr(args, spec.dest, Path(v) if spec.type == "path" and v is not None else v)
    _hosts(args, eff)
    if hasattr(args, "src_file"):  # the command takes value sources: the file's follow the command line's
        from coordinator.steps.keys import ValueSource  # NOTE: here: `config show` needs no keyring

        args.value_sources = [*(getattr(args, "value_sources", None) or []),
                              *(ValueSource(s.kind, s.arg, s.uuid, s.usage) for s in eff.sources)]
    args.ssh_hosts = eff.host_ssh()
    return eff


def _hosts(args: argparse.Namespace, eff: Effective) -> None:
    if getattr(args, "src", None):
        args.src = eff.resolve_host(args.src)
    if getattr(args, "dst", None):
        args.dst = eff.resolve_host(args.dst)
    if hasattr(args, "dsts"):
        dsts = [eff.resolve_host(d) for d in (args.dsts or [])]
        for g in getattr(args, "to_group", None) or []:
            dsts += [u for u in eff.group(g) if u not in dsts and u != args.src]
        if not dsts:
            raise BadInput("no destination given", hint="give --to HOST_OR_URI or --to-group GROUP")
        args.dsts = dsts
    if getattr(args, "max_memory", None):  # --max-memory hv2=4096: an alias there too
        args.max_memory = [f"{eff.resolve_host(d)}={m}" if sep else spec
                           for spec in args.max_memory for d, sep, m in [spec.rpartition("=")]]
    for dest in ("report", "metrics_file"):  # {source}: the source host; {command}: migrate | evacuate
        path = getattr(args, dest, None)
        if path is not None and ("{source}" in str(path) or "{command}" in str(path)):
            host = uri_facts(args.src).host or "localhost"
            setattr(args, dest, Path(str(path).replace("{source}", host).replace("{command}", args.command)))
