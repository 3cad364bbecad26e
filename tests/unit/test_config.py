"""core/config: the settings file's validation and the merge (tables), and cli/invocation built from argv."""
from __future__ import annotations

import json
import os
import tomllib

import pytest

from coordinator.cli.main import build_parser, main
from coordinator.core.config import SPECS, FileConfig, config_path, merge, parse_file
from coordinator.core.errors import BadInput

F = "/etc/migcoord/config.toml"
GOOD = """
[migration]
tls = true
bandwidth = 500
timeout = 600

[evacuate]
parallel = 3

[paths]
journal = "/var/log/migcoord/j.jsonl"
metrics = "/var/lib/node_exporter/migcoord.prom"

[hosts.hv1]
uri = "qemu+ssh://hv1.example/system"
[hosts.hv2]
uri = "qemu+ssh://hv2.example/system"
ssh = { user = "ops", port = 2222, key = "/etc/migcoord/id_ed25519" }
[hosts.hv3]
uri = "qemu+tls://hv3.example/system"

[groups]
rack2 = ["hv2", "hv3"]

[[sources]]
uuid = "0f6ed5b4-0d3a-4c5e-9a51-3c6b3a0c4a11"
file = "/etc/migcoord/keys/tpm-vm1"
[[sources]]
usage = "VTPM_*"
command = "/usr/local/sbin/vault-secret {uuid}"
[[sources]]
dir = "/etc/migcoord/keys"
"""


def test_a_good_file_parses():
    fc = parse_file(F, tomllib.loads(GOOD))
    assert fc.values["migration.tls"] is True and fc.values["migration.timeout"] == 600.0
    assert fc.hosts["hv2"].ssh.port == 2222 and fc.groups["rack2"] == ("hv2", "hv3")
    assert [s.kind for s in fc.sources] == ["file", "command", "dir"]
    assert fc.sources[1].applies_to("x", "VTPM_abc") and not fc.sources[1].applies_to("x", "disk")


@pytest.mark.parametrize("text, where", [
    ("[migration]\ntsl = true", f"{F}:migration.tsl: unknown key"),
    ("[migrations]\ntls = true", f"{F}:migrations: unknown key"),
    ("[migration]\ntls = 'yes'", f"{F}:migration.tls: expected true or false"),
    ("[migration]\nbandwidth = 1.5", f"{F}:migration.bandwidth: expected an integer"),
    ("[migration]\nbandwidth = true", f"{F}:migration.bandwidth: expected an integer"),
    ("[migration]\nretries = 0", f"{F}:migration.retries: must be at least 1"),
    ("[logging]\nlevel = 'loud'", f"{F}:logging.level: expected debug"),
    ("migration = 3", f"{F}:migration: expected a table"),
    ("[hosts.hv1]\nurl = 'qemu:///system'", f"{F}:hosts.hv1.url: unknown key"),
    ("[hosts.hv1]\nssh = {}", f"{F}:hosts.hv1.uri: missing"),
    ("[hosts.hv1]\nuri = 'http://x/'", f"{F}:hosts.hv1.uri: not a libvirt QEMU URI"),
    ("[hosts.hv1]\nuri = 'qemu:///system'\nssh = { prot = 22 }", f"{F}:hosts.hv1.ssh.prot: unknown key"),
    ("[hosts.hv1]\nuri = 'qemu:///system'\nssh = { port = '22' }", f"{F}:hosts.hv1.ssh.port: expected an integer"),
    ("[hosts.hv1]\nuri = 'qemu:///system'\n[groups]\nrack = ['hv1', 'hv9']",
     f"{F}:groups.rack: unknown host 'hv9'"),
    ("[groups]\nrack = 'hv1'", f"{F}:groups.rack: expected a non-empty list"),
    ("[[sources]]\nfile = '/k'", f"{F}:sources[0]: a file source needs a uuid or a usage pattern"),
    ("[[sources]]\ndir = '/k'\ncommand = 'x'", f"{F}:sources[0]: give exactly one of file, dir, command"),
    ("[[sources]]\ndir = '/k'\nuuid = 'nope'", f"{F}:sources[0].uuid:"),
    ("[[sources]]\ndir = '/k'\nvalue = 'hunter2'", f"{F}:sources[0].value: unknown key"),
    ("sources = 3", f"{F}:sources: expected an array of tables"),
])
def test_bad_files_name_file_and_key(text, where):
    with pytest.raises(BadInput) as e:
        parse_file(F, tomllib.loads(text))
    assert where in str(e.value) and e.value.exit_code == 2


FILE = FileConfig(F, {"migration.bandwidth": 100, "migration.tls": True})


@pytest.mark.parametrize("env, cli, key, value, origin", [
    ({}, {}, "migration.bandwidth", 100, f"file:{F}"),
    ({"MIGCOORD_MIGRATION_BANDWIDTH": "200"}, {}, "migration.bandwidth", 200, "env:MIGCOORD_MIGRATION_BANDWIDTH"),
    ({"MIGCOORD_MIGRATION_BANDWIDTH": "200"}, {"migration.bandwidth": 300}, "migration.bandwidth", 300,
     "command line"),
    ({}, {}, "migration.retries", 4, "default"),
    ({"MIGCOORD_MIGRATION_TLS": "no"}, {}, "migration.tls", False, "env:MIGCOORD_MIGRATION_TLS"),
    ({"MIGCOORD_MIGRATION_TLS": ""}, {}, "migration.tls", True, f"file:{F}"),  # empty: unset
    ({"MIGCOORD_LOCK_DIR": "/tmp/l"}, {}, "paths.lock_dir", "/tmp/l", "env:MIGCOORD_LOCK_DIR"),
    ({"MIGCOORD_JOURNAL": "/tmp/j"}, {}, "paths.journal", "/tmp/j", "env:MIGCOORD_JOURNAL"),  # kept names
    ({"MIGCOORD_LOGGING_LEVEL": "INFO"}, {}, "logging.level", "info", "env:MIGCOORD_LOGGING_LEVEL"),
])
def test_command_line_beats_environment_beats_file_beats_default(env, cli, key, value, origin):
    s = merge(FILE, env, cli).setting(key)
    assert (s.value, s.origin) == (value, origin)


@pytest.mark.parametrize("env, message", [
    ({"MIGCOORD_MIGRATION_BANDWIDTH": "fast"}, "env:MIGCOORD_MIGRATION_BANDWIDTH: expected an integer"),
    ({"MIGCOORD_MIGRATION_TLS": "maybe"}, "env:MIGCOORD_MIGRATION_TLS: expected one of"),
    ({"MIGCOORD_EVACUATE_PARALLEL": "0"}, "env:MIGCOORD_EVACUATE_PARALLEL: must be at least 1"),
])
def test_bad_environment_is_named(env, message):
    with pytest.raises(BadInput, match=message):
        merge(None, env, {})


@pytest.mark.parametrize("cli, env, expected", [
    (None, {}, (F, False)),
    (None, {"MIGCOORD_CONFIG": "/e.toml"}, ("/e.toml", True)),
    ("/c.toml", {"MIGCOORD_CONFIG": "/e.toml"}, ("/c.toml", True)),
])
def test_config_path(cli, env, expected):
    assert config_path(cli, env) == expected


def test_every_setting_has_a_command_line_twin_somewhere():
    from coordinator.cli.settings import _actions
    dests = {a.dest for a in _actions(build_parser())}
    assert [s.key for s in SPECS if s.dest not in dests] == []


# ------------------------------------------------------------------ through the command line

@pytest.fixture
def cfgfile(tmp_path):
    p = tmp_path / "config.toml"
    p.write_text(GOOD)
    p.chmod(0o600)
    return p


def _show(capsys, *argv, env=None):
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        rc = main([*argv, "config", "show", "--json"])
    finally:
        os.environ.clear()
        os.environ.update(old)
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else err)


def test_config_show_reports_origins(cfgfile, capsys):
    rc, data = _show(capsys, "--config", str(cfgfile), "--log-level", "info",
                     env={"MIGCOORD_EVACUATE_PARALLEL": "5"})
    assert rc == 0
    s = data["settings"]
    assert s["migration.tls"] == {"value": True, "origin": f"file:{cfgfile}"}
    assert s["evacuate.parallel"] == {"value": 5, "origin": "env:MIGCOORD_EVACUATE_PARALLEL"}
    assert s["logging.level"] == {"value": "info", "origin": "command line"}
    assert s["migration.retries"]["origin"] == "default"
    assert data["groups"] == {"rack2": ["hv2", "hv3"]} and data["hosts"]["hv1"]["uri"].startswith("qemu+ssh")


def test_config_env_var_names_the_file(cfgfile, capsys):
    rc, data = _show(capsys, env={"MIGCOORD_CONFIG": str(cfgfile)})
    assert rc == 0 and data["file"] == str(cfgfile)


@pytest.mark.parametrize("text, mode, message", [
    ("[migration]\ntsl = true\n", 0o600, ":migration.tsl: unknown key"),
    ("[hosts.a]\nuri = 'qemu:///system'\n[groups]\ng = ['b']\n", 0o600, ":groups.g: unknown host 'b'"),
    ("[migration\n", 0o600, "not valid TOML"),
    ("", 0o666, "writable by group or others"),
])
def test_bad_config_exits_2(tmp_path, capsys, text, mode, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    p.chmod(mode)
    rc, err = _show(capsys, "--config", str(p))
    assert rc == 2 and message in err and str(p) in err


def test_missing_named_config_exits_2(tmp_path, capsys):
    rc, err = _show(capsys, "--config", str(tmp_path / "nope.toml"))
    assert rc == 2 and "settings file" in err and "does not exist" in err


def _args(cfgfile, *argv):
    from coordinator.cli import invocation
    full = ["--config", str(cfgfile), *argv]
    args = build_parser().parse_args(full)
    return invocation.build(args, build_parser, full, {})


def test_aliases_groups_and_sources_reach_the_arguments(cfgfile):
    a = _args(cfgfile, "migrate", "vm1", "--from", "hv1", "--to", "hv2", "--bandwidth", "50")
    assert (a.src, a.dst) == ("qemu+ssh://hv1.example/system", "qemu+ssh://hv2.example/system")
    assert a.bandwidth == 50 and a.tls is True and a.timeout == 600.0 and str(a.journal) == "/var/log/migcoord/j.jsonl"
    assert [s.kind for s in a.value_sources] == ["file", "command", "dir"]
    assert a.ssh_hosts["hv2.example"].user == "ops"
    e = _args(cfgfile, "evacuate", "--from", "hv1", "--to-group", "rack2", "--report", "/r/{source}.json",
              "--max-memory", "hv2=1024")
    assert e.max_memory == ("qemu+ssh://hv2.example/system=1024",)
    assert e.dsts == ("qemu+ssh://hv2.example/system", "qemu+tls://hv3.example/system")
    assert e.parallel == 3 and str(e.report) == "/r/hv1.example.json"


def test_command_line_sources_come_first(cfgfile, tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    a = _args(cfgfile, "migrate", "vm1", "--from", "hv1", "--to", "hv2", "--secret-dir", str(d))
    assert [s.kind for s in a.value_sources] == ["dir", "file", "command", "dir"]


def test_unknown_group_and_no_destination_are_bad_input(cfgfile):
    with pytest.raises(BadInput, match="unknown destination group 'rack9'"):
        _args(cfgfile, "evacuate", "--from", "hv1", "--to-group", "rack9")
    with pytest.raises(BadInput, match="no destination given"):
        _args(cfgfile, "evacuate", "--from", "hv1")


def test_per_host_ssh_settings_reach_the_runner():
    from coordinator.core.config import HostSsh
    from coordinator.ssh.runner import SshConfig, runner_for
    cfg = SshConfig(user="root", per_host={"hv2.example": HostSsh(user="ops", port=2222)})
    r = runner_for("qemu+ssh://hv2.example/system", cfg)
    assert (r.config.user, r.config.port) == ("ops", 2222)
    r = runner_for("qemu+ssh://admin@hv2.example:2200/system", cfg)  # the URI's own user/port win
    assert (r.config.user, r.config.port) == ("admin", 2200)


def test_per_gib_deadline_settings_reach_the_deadline(tmp_path):
    from coordinator.cli.options import timeouts

    f = tmp_path / "c.toml"
    f.write_text("[migration]\ntimeout_per_gib = 300\ntimeout_minimum = 120\n")
    f.chmod(0o600)
    a = _args(f, "migrate", "vm1", "--from", "qemu+tls://a.example/system", "--to", "qemu+tls://b.example/system")
    t = timeouts(a)
    assert (t.per_gib_s, t.minimum_s, t.completion_s) == (300.0, 120.0, None)
    assert t.for_memory(4 * 2**30).completion_s == 1200.0      # 300 s × 4 GiB
    assert t.for_memory(2**28).completion_s == 120.0           # at least the minimum
    a = _args(f, "migrate", "vm1", "--from", "qemu+tls://a.example/system", "--to", "qemu+tls://b.example/system",
              "--timeout-per-gib", "100")                       # the command line wins
    assert timeouts(a).for_memory(4 * 2**30).completion_s == 400.0
