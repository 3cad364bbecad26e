"""The settings file and the environment, merged with what the command line really gave.

``effective`` reads the file (``--config`` > ``MIGCOORD_CONFIG`` > ``/etc/migcoord/config.toml`` when
present) and merges (``core.config.merge``: command line > environment > file > defaults) with the
options ``given_dests`` says the command line set. ``cli.invocation.build`` turns the result into
the command's invocation object (host aliases, groups, value sources).
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coordinator.core.config import SPECS, Effective, FileConfig, config_path, merge, parse_file
from coordinator.files.configfile import load_config_file


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for a in parser._actions:  # NOTE: argparse has no public walk over (sub)parsers
        yield a
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _actions(sub)
                for form in getattr(sub, "word_forms", {}).values():  # ``secrets audit``
                    yield from _actions(form)


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
    return merge(load(args.config, environ), environ, cli)
