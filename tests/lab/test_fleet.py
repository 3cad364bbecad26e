"""Issue #13 on the real lab: the settings file (aliases, groups, value sources by usage pattern),
the metrics textfile, and exit 75 when another run holds the lock."""
from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from coordinator.steps.locks import host_lock
from coordinator.virt.host import Host
from labkit.client import assert_no_value


def write_config(lab, tmp_path: Path, extra: str = "") -> Path:
    """The settings file; it names the journal and the lock directory (the migcoord fixture adds neither
    when the first argument is an option: ``--config FILE ...``)."""
    p = tmp_path / "config.toml"
    p.write_text(f"""
[hosts.hv1]
uri = "{lab.uri('src')}"
[hosts.hv2]
uri = "{lab.uri('dst')}"
[hosts.hv3]
uri = "{lab.uri('dst2')}"
[groups]
rack2 = ["hv2", "hv3"]
[paths]
journal = "{tmp_path / 'journal.jsonl'}"
lock_dir = "{tmp_path / 'locks'}"
metrics = "{tmp_path / 'migcoord.prom'}"
report = "{tmp_path}/evacuate-{{source}}.json"
[migration]
retries = 2
{extra}""")
    p.chmod(0o600)
    return p


def metrics(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_migrate_by_alias_with_a_value_source_from_the_file_writes_metrics(clean, name, migcoord, tmp_path):
    lab = clean
    sid = lab.vm(name, on="src", secret="private")["secret"]
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    value = lab.stored_value("src", sid)
    (keys / sid).write_bytes(value)
    (keys / sid).chmod(0o600)
    # the private value comes only from the file's [[sources]], chosen by the secret's usage id
    cfg = write_config(lab, tmp_path, f'[[sources]]\nusage = "{name}-*"\ndir = "{keys}"\n')

    r = migcoord("--config", str(cfg), "migrate", name, "--from", "hv1", "--to", "hv2", timeout=300)

    assert r.returncode == 0, r.stderr_text
    assert f"migrated {lab.uri('src')} -> {lab.uri('dst')}" in r.stdout_text
    assert lab.where(name) == {"dst": "running"} and lab.digest("dst", sid) == lab.digest("src", sid)
    m = metrics(tmp_path / "migcoord.prom")
    assert m["migcoord_last_run_exit_code"][0][1] == 0
    (labels, _), = m["migcoord_domain_result"]
    assert (labels["domain"], labels["result"], labels["destination"]) == (name, "moved", lab.uri("dst"))
    assert m["migcoord_bytes_moved"][0][1] > 0  # the destination's completed-job statistics
    assert_no_value(value, r.stdout, r.stderr, (tmp_path / "migcoord.prom").read_bytes(),
                    (tmp_path / "journal.jsonl").read_bytes())


def test_blocked_migration_names_the_check_in_the_metrics(clean, name, migcoord, tmp_path):
    lab = clean
    lab.vm(name, on="src", secret="private")  # no value source anywhere: blocked, nothing changes
    cfg = write_config(lab, tmp_path)
    r = migcoord("--config", str(cfg), "migrate", name, "--from", "hv1", "--to", "hv2", timeout=300)
    assert r.returncode == 1, r.stderr_text
    (labels, _), = metrics(tmp_path / "migcoord.prom")["migcoord_domain_result"]
    assert labels["result"] == "blocked" and "SECRET-NO-VALUE-SOURCE" in labels["blocking_checks"].split(",")
    assert lab.where(name) == {"src": "running"}


def test_evacuate_to_a_group_and_a_held_lock_exits_75(clean, name, migcoord, tmp_path):
    lab = clean
    lab.vm(f"{name}-a", on="src")
    cfg = write_config(lab, tmp_path)
    src = Host.open(lab.uri("src"))
    try:
        with host_lock(tmp_path / "locks", src.host_uuid(), lab.uri("src")):
            busy = migcoord("--config", str(cfg), "evacuate", "--from", "hv1", "--to-group", "rack2", timeout=300)
    finally:
        src.close()
    assert busy.returncode == 75, busy.stderr_text
    assert "another migcoord evacuation" in busy.stderr_text
    assert metrics(tmp_path / "migcoord.prom")["migcoord_last_run_exit_code"][0][1] == 75
    assert lab.where(f"{name}-a") == {"src": "running"}

    r = migcoord("--config", str(cfg), "--quiet", "evacuate", "--from", "hv1", "--to-group", "rack2", timeout=300)

    assert r.returncode == 0, r.stderr_text
    assert r.stderr == b""  # --quiet: no events
    assert set(lab.where(f"{name}-a")) <= {"dst", "dst2"}
    host = lab.uri("src").split("/")[2]
    assert (tmp_path / f"evacuate-{host}.json").exists()
    m = metrics(tmp_path / "migcoord.prom")
    assert {lb["result"]: v for lb, v in m["migcoord_domains"]}["moved"] == 1
    assert m["migcoord_last_run_exit_code"][0][1] == 0
