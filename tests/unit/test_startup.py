"""Start-up (issue #15): each command imports only what it uses — held by what a fresh process has
loaded, never by timing it (timing lives in scripts/labkit/bench/startup.py).

Each case runs the command line in a new interpreter and lists which heavy modules ended up in
``sys.modules``: building the parser (``--version``, ``--help``, a usage error) loads neither
libvirt, paramiko, tenacity, the checks, the flows, the steps nor the seams; ``check`` loads
libvirt and the checks but not paramiko (no SSH connection was made), tenacity (it never
retries) or the migrate/evacuate flows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("libvirt", "paramiko", "tenacity", "checks", "coordinator.flows", "coordinator.steps", "coordinator.virt",
         "coordinator.ssh", "coordinator.core.config", "coordinator.flows.migrate", "coordinator.flows.evacuate")

# Nothing listens on ports 1 and 2: both connections are refused at once (no retry, no DNS).
SRC, DST = "qemu+tcp://127.0.0.1:1/system", "qemu+tcp://127.0.0.1:2/system"

RUN = textwrap.dedent("""
    import contextlib, io, json, sys
    from coordinator.cli.main import main
    argv = json.loads(sys.argv[1])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:  # not expected (main returns), but a list of modules is still wanted
            rc = e.code
    if argv[:1] == ["--version"]:
        assert out.getvalue().startswith("migcoord "), out.getvalue()
    loaded = [h for h in json.loads(sys.argv[2]) if any(m == h or m.startswith(h + ".") for m in sys.modules)]
    print(json.dumps({"rc": rc, "loaded": loaded}))
""")


def loaded_by(argv: list[str], tmp_path: Path, code: str = RUN, extra: tuple[str, ...] = ()) -> dict:
    config = tmp_path / "config.toml"  # an empty settings file: /etc/migcoord/config.toml plays no part
    config.write_text("")
    config.chmod(0o600)
    env = dict(os.environ, MIGCOORD_CONFIG=str(config),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "scripts"), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", code, json.dumps(argv), json.dumps(HEAVY + extra)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv, rc", [
    (["--version"], 0),
    (["--help"], 0),
    (["check", "--help"], 0),
    (["migrate", "--help"], 0),
    (["evacuate", "--help"], 0),
    (["check", "vm1", "--from", SRC], 2),                # a usage error: --to missing
    (["migrate", "vm1", "--from", SRC, "--to", DST, "--no-such-option"], 2),
])
def test_the_parser_path_loads_nothing_heavy(tmp_path, argv, rc):
    got = loaded_by(argv, tmp_path, extra=("ctypes",))  # nodump loads it only when a value is held
    assert got == {"rc": rc, "loaded": []}


def test_config_show_reads_settings_without_libvirt_or_the_flows(tmp_path):
    got = loaded_by(["config", "show"], tmp_path)
    assert got["rc"] == 0
    assert got["loaded"] == ["coordinator.core.config"]


@pytest.mark.parametrize("ssh", [[], ["--ssh"]], ids=["no-ssh", "ssh-configured"])
def test_check_loads_libvirt_and_the_checks_only(tmp_path, ssh):
    """Both hosts unreachable: the report blocks (exit 1) and no SSH connection is made, so even
    with SSH configured paramiko is not loaded."""
    got = loaded_by(["check", "vm1", "--from", SRC, "--to", DST, *ssh], tmp_path, extra=("ctypes",))
    assert got["rc"] == 1
    assert "ctypes" not in got["loaded"]  # nodump loads it when a value is first held, not at start-up
    assert {"libvirt", "checks", "coordinator.virt", "coordinator.steps"} <= set(got["loaded"])
    assert not {"paramiko", "tenacity", "coordinator.flows.migrate", "coordinator.flows.evacuate"} & set(got["loaded"])


def test_paramiko_is_loaded_when_an_ssh_connection_is_made(tmp_path):
    """The other half: the SSH seam imports paramiko when it really connects (here to a port where
    nothing listens, which fails as HostUnreachable after paramiko was loaded)."""
    known = tmp_path / "known_hosts"
    known.write_text("")
    code = textwrap.dedent(f"""
        import json, sys
        from coordinator.core.errors import MigcoordError
        from coordinator.ssh.runner import SshConfig, runner_for
        assert "paramiko" not in sys.modules
        runner = runner_for("qemu+ssh://127.0.0.1/system",
                            SshConfig(port=1, known_hosts={str(known)!r}, connect_timeout=5))
        assert "paramiko" not in sys.modules  # a runner is not a connection
        try:
            runner.run("true")
        except MigcoordError:
            pass
        print(json.dumps({{"rc": 0, "loaded": [m for m in ("paramiko",) if m in sys.modules]}}))
    """)
    assert loaded_by([], tmp_path, code=code) == {"rc": 0, "loaded": ["paramiko"]}
