"""`migcoord completion bash`: generated from the parser, and bash really completes with it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.cli.cmd_completion import bash
from coordinator.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (the word being typed)."""
    arr = " ".join(f"'{w}'" for w in ("migcoord", *words))
    prog = f"{script}\nCOMP_WORDS=({arr}); COMP_CWORD={len(words)}; _migcoord; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True, check=True)
    return [x for x in r.stdout.splitlines() if x]


@pytest.fixture(scope="module")
def script() -> str:
    if shutil.which("bash") is None:
        pytest.skip("bash not installed")
    return bash(build_parser())


@pytest.mark.parametrize("words, expected", [
    (("mig",), ["migrate"]),
    (("",), ["check", "completion", "config", "evacuate", "migrate", "secrets"]),
    (("evacuate", "--to-g"), ["--to-group"]),
    (("--log-level", "w"), ["warning"]),
    (("migrate", "vm1", "--dest-eph"), ["--dest-ephemeral"]),
    (("config", "sh"), ["show"]),
    (("--config", "/etc/migcoord/c.toml", "evacuate", "--include-"), ["--include-inactive"]),
])
def test_bash_completes(script, words, expected):
    got = _complete(script, *words)
    assert all(e in got for e in expected) and (len(got) == len(expected) or words == ("",)), got


def test_the_command_prints_a_script(capsys):
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# bash completion for migcoord") and "complete -o default -F _migcoord migcoord" in out
    subprocess.run(["bash", "-n"], input=out, text=True, check=True)  # syntax


def test_host_aliases_and_groups_come_from_the_settings_file(script, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[hosts.hv1]\nuri = "qemu:///system"\n[hosts.hv2]\nuri = "qemu:///session"\n'
                   '[groups]\nrack2 = ["hv2"]\n')
    cfg.chmod(0o600)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "migcoord").write_text(f"#!/bin/sh\nMIGCOORD_CONFIG={cfg} exec {sys.executable} -m coordinator \"$@\"\n")
    (shim / "migcoord").chmod(0o755)
    env = f"export PATH={shim}:$PATH PYTHONPATH={ROOT}\n"
    assert _complete(env + script, "migrate", "vm1", "--from", "hv") == ["hv1", "hv2"]
    assert _complete(env + script, "evacuate", "--to-group", "r") == ["rack2"]
