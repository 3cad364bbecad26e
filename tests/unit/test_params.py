"""coordinator.core.params: a MigrationPolicy → migrateToURI3 flag names and typed params."""
from __future__ import annotations

import libvirt
import pytest

from coordinator.core.errors import BadInput
from coordinator.core.params import (MigrationPolicy, TimeoutPolicy, deadlines, migration_flags, migration_params,
                                    on_deadline)

BASE = {"PEER2PEER", "LIVE", "PERSIST_DEST", "UNDEFINE_SOURCE"}
OFFLINE_BASE = {"PEER2PEER", "OFFLINE", "PERSIST_DEST", "UNDEFINE_SOURCE"}

FLAG_CASES = [
    pytest.param({}, BASE, id="default"),
    pytest.param({"undefine_source": False}, BASE - {"UNDEFINE_SOURCE"}, id="keep-source"),
    pytest.param({"persist": False}, BASE - {"PERSIST_DEST"}, id="no-persist"),
    pytest.param({"live": False}, OFFLINE_BASE, id="offline"),
    pytest.param({"live": False, "auto_converge": True, "postcopy": True, "copy_storage": True},
                 OFFLINE_BASE, id="offline-ignores-live-only"),
    pytest.param({"tls": True}, BASE | {"TLS"}, id="tls"),
    pytest.param({"parallel": 4}, BASE | {"PARALLEL"}, id="parallel"),
    pytest.param({"compression": "xbzrle"}, BASE | {"COMPRESSED"}, id="compression"),
    pytest.param({"auto_converge": True}, BASE | {"AUTO_CONVERGE"}, id="auto-converge"),
    pytest.param({"postcopy": True}, BASE | {"POSTCOPY"}, id="postcopy"),
    pytest.param({"copy_storage": True}, BASE | {"NON_SHARED_DISK"}, id="copy-storage"),
    pytest.param({"unsafe": True}, BASE | {"UNSAFE"}, id="unsafe"),
    pytest.param({"tls": True, "parallel": 2, "compression": "zlib", "auto_converge": True,
                  "postcopy": True, "copy_storage": True, "unsafe": True, "undefine_source": False},
                 (BASE - {"UNDEFINE_SOURCE"}) | {"TLS", "PARALLEL", "COMPRESSED", "AUTO_CONVERGE",
                                                 "POSTCOPY", "NON_SHARED_DISK", "UNSAFE"}, id="everything"),
]


@pytest.mark.parametrize("kw, expected", FLAG_CASES)
def test_migration_flags(kw, expected):
    flags = migration_flags(MigrationPolicy(**kw))
    assert flags == frozenset(expected)
    assert not {"LIVE", "OFFLINE"} <= flags


@pytest.mark.parametrize("kw, expected", FLAG_CASES)
def test_every_flag_is_a_libvirt_constant(kw, expected):
    for name in migration_flags(MigrationPolicy(**kw)):
        assert isinstance(getattr(libvirt, f"VIR_MIGRATE_{name}", None), int), name


def test_offline_without_persist_is_bad_input():
    with pytest.raises(BadInput, match="persistent"):
        migration_flags(MigrationPolicy(live=False, persist=False))


@pytest.mark.parametrize("kw, dest_name, expected", [
    pytest.param({}, None, {}, id="default"),
    pytest.param({"bandwidth_mib": 100}, None, {"bandwidth": 100}, id="bandwidth"),
    pytest.param({"parallel": 4}, None, {"parallel.connections": 4}, id="parallel"),
    pytest.param({"compression": "xbzrle"}, None, {"compression": "xbzrle"}, id="compression"),
    pytest.param({"migrate_uri": "tcp://10.1.0.2"}, None, {"migrate_uri": "tcp://10.1.0.2"}, id="migrate-uri"),
    pytest.param({"listen_address": "0.0.0.0"}, None, {"listen_address": "0.0.0.0"}, id="listen-address"),
    pytest.param({}, "vm1-new", {"destination_name": "vm1-new"}, id="destination-name"),
    pytest.param({"bandwidth_mib": 1, "parallel": 2, "compression": "xbzrle"}, "n",
                 {"bandwidth": 1, "parallel.connections": 2, "compression": "xbzrle",
                  "destination_name": "n"}, id="combined"),
])
def test_migration_params(kw, dest_name, expected):
    assert migration_params(MigrationPolicy(**kw), dest_name) == expected


def test_param_keys_are_libvirt_param_names():
    assert {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH, libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS,
            libvirt.VIR_MIGRATE_PARAM_COMPRESSION, libvirt.VIR_MIGRATE_PARAM_URI,
            libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS, libvirt.VIR_MIGRATE_PARAM_DEST_NAME} == {
        "bandwidth", "parallel.connections", "compression", "migrate_uri", "listen_address",
        "destination_name"}


@pytest.mark.parametrize("kw", [{"bandwidth_mib": 0}, {"bandwidth_mib": -5}, {"parallel": -1}])
def test_migration_params_rejects(kw):
    with pytest.raises(BadInput):
        migration_params(MigrationPolicy(**kw))


@pytest.mark.parametrize("method", ["zlib", "zstd"])
def test_multithreaded_compression_needs_parallel(method):
    with pytest.raises(BadInput, match="parallel"):
        migration_flags(MigrationPolicy(compression=method))
    assert "COMPRESSED" in migration_flags(MigrationPolicy(compression=method, parallel=2))


# ---------------------------------------------------------------- deadlines (issue 5)


GiB = 2**30


@pytest.mark.parametrize("memory, kw, completion, stall", [
    pytest.param(128 * 2**20, {}, 100.0, 150.0, id="small-guest-gets-the-minimum"),
    pytest.param(1 * GiB, {}, 800.0, 150.0, id="800s-per-GiB"),
    pytest.param(4 * GiB, {"per_gib_s": 10.0, "minimum_s": 5.0}, 40.0, 150.0, id="custom-scale"),
    pytest.param(4 * GiB, {"completion_s": 3.0, "stall_s": 2.0}, 3.0, 2.0, id="explicit-wins"),
])
def test_deadlines_scale_with_memory_from_a_minimum_and_explicit_ones_win(memory, kw, completion, stall):
    kw = {"minimum_s": 100.0, **kw}
    d = deadlines(memory, **kw)
    assert (d.completion_s, d.stall_s) == (completion, stall)


@pytest.mark.parametrize("kw", [{"completion_s": 0}, {"completion_s": -1}, {"stall_s": 0}])
def test_deadlines_reject_nonsense(kw):
    with pytest.raises(BadInput):
        deadlines(GiB, **kw)


def test_timeout_policy_scales_with_memory():
    assert TimeoutPolicy().for_memory(2 * GiB).completion_s == 1600.0
    assert TimeoutPolicy(completion_s=7).for_memory(2 * GiB).completion_s == 7


@pytest.mark.parametrize("policy, switched, action", [
    (MigrationPolicy(), False, "abort"),
    (MigrationPolicy(postcopy=True), False, "postcopy"),
    (MigrationPolicy(postcopy=True), True, "abort"),     # switched once already: now give up
    (MigrationPolicy(postcopy=True, live=False), False, "abort"),
])
def test_on_deadline(policy, switched, action):
    assert on_deadline(policy, switched) == action


@pytest.mark.parametrize("kw, flag_present", [
    ({"on_deadline": "postcopy"}, True), ({"on_deadline": "suspend"}, False), ({"postcopy": True}, True),
    ({"on_deadline": "postcopy", "live": False}, False),
])
def test_on_deadline_postcopy_allows_postcopy(kw, flag_present):
    assert ("POSTCOPY" in migration_flags(MigrationPolicy(**kw))) is flag_present


@pytest.mark.parametrize("kw", [{"on_deadline": "later"}, {"max_downtime_ms": 0}, {"max_downtime_ms": -5}])
def test_control_settings_validated(kw):
    with pytest.raises(BadInput):
        migration_flags(MigrationPolicy(**kw))
