"""cli/invocation: one frozen invocation object per command, carrying exactly the options its parser has."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from coordinator.cli import invocation
from coordinator.cli.main import build_parser

U1, U2 = "qemu+tls://a.example/system", "qemu+tls://b.example/system"
ARGV = {
    "migrate": ["migrate", "vm", "--from", U1, "--to", U2],
    "evacuate": ["evacuate", "--from", U1, "--to", U2],
    "secrets": ["secrets", "vm", "--from", U1, "--to", U2],
    "secrets-audit": ["secrets", "audit", U1, U2],
    "check": ["check", "vm", "--from", U1, "--to", U2],
    "abort": ["abort", "vm", "--from", U1],
    "complete": ["complete", "vm", "--from", U1],
    "maintenance": ["maintenance", "status", U1],
    "config": ["config", "show"],
    "completion": ["completion", "bash"],
}
DERIVED = {"settings", "ssh_hosts", "value_sources"}  # filled by the merge, not by a parser dest


def _build(argv: list[str]) -> tuple[argparse.Namespace, invocation.Invocation]:
    ns = build_parser().parse_args(argv)
    return ns, invocation.build(ns, build_parser, argv, {})


def test_every_command_has_an_invocation_type():
    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    forms = {f.get_default("command") for p in subs.choices.values() for f in getattr(p, "word_forms", {}).values()}
    assert forms == {"secrets-audit"}  # `secrets audit HOST...`: a word form of `secrets`
    assert set(subs.choices) | forms == set(invocation.BY_COMMAND) == set(ARGV)


@pytest.mark.parametrize("command", sorted(ARGV))
def test_invocation_carries_exactly_the_parsers_options(command, monkeypatch, tmp_path):
    monkeypatch.setattr("coordinator.core.config.DEFAULT_PATH", str(tmp_path / "absent.toml"))
    ns, inv = _build(ARGV[command])
    assert type(inv) is invocation.BY_COMMAND[command]
    names = {f.name for f in dataclasses.fields(inv)}
    parsed = set(vars(ns)) - invocation.NOT_CARRIED
    no_json = {"json"} if command == "completion" else set()  # a fixed False there
    assert names - DERIVED - no_json == parsed - {"value_sources"}


@pytest.mark.parametrize("command", sorted(ARGV))
def test_invocations_are_frozen(command, monkeypatch, tmp_path):
    monkeypatch.setattr("coordinator.core.config.DEFAULT_PATH", str(tmp_path / "absent.toml"))
    ns, inv = _build(ARGV[command])
    assert dataclasses.is_dataclass(inv) and type(inv).__dataclass_params__.frozen  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.command = "other"  # type: ignore[misc]
    lists = [f.name for f in dataclasses.fields(inv) if isinstance(getattr(inv, f.name), list)]
    assert lists == []  # repeatable options arrive as tuples


def test_the_namespace_is_left_as_argparse_made_it(monkeypatch, tmp_path):
    monkeypatch.setattr("coordinator.core.config.DEFAULT_PATH", str(tmp_path / "absent.toml"))
    argv = ["-v", "evacuate", "--from", U1, "--to", U2, "--report", "/r/{source}.json"]
    ns = build_parser().parse_args(argv)
    before = dict(vars(ns))
    inv = invocation.build(ns, build_parser, argv, {"MIGCOORD_EVACUATE_PARALLEL": "5"})
    assert vars(ns) == before
    assert isinstance(inv, invocation.EvacuateInvocation)
    assert (inv.parallel, inv.log_level, str(inv.report), inv.dsts) == (5, "info", "/r/a.example.json", (U2,))
