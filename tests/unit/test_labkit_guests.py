"""scripts/labkit: the lab's guest CPU probe, the LUKS image retry and the dirty-memory program's
checks, as tables (no lab, no QEMU)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from labkit.guest_cpu import (FLEET_BASELINE, HOST_MODEL, HYPERVISOR_DEFAULT, choose_cpu, features_kvm_cannot_set,
                              host_model_without)
from labkit.guests import (DIRTIER, DIRTY_WORD, FILL_DONE_AT, FILL_END, FILL_START, create_luks_image,
                           fill_end_plausible)

# What `virsh create` prints (whitespace collapsed, as the probe records it) when QEMU 7.2 aborts
# on nested KVM for host-model (LAB-NOTES).
MSR_ERROR = ("error: Failed to create domain from /var/tmp/lab/tmpx.xml error: internal error: qemu "
             "unexpectedly closed the monitor: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69 "
             "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:2994: kvm_buf_set_msrs: Assertion "
             "`ret == cpu->kvm_msr_buf->nmsrs' failed.")
WITHOUT_ARCH_CAPS = "<cpu mode='host-model'><feature policy='disable' name='arch-capabilities'/></cpu>"
UNKNOWN_MODEL = "error: unsupported configuration: Unknown CPU model nope"
GIVEN = "<cpu mode='custom'><model fallback='forbid'>nope</model></cpu>"


@pytest.mark.parametrize(("error", "features"), [
    pytest.param("", [], id="no-error-text"),
    pytest.param(MSR_ERROR, ["arch-capabilities"], id="qemu-msr-0x10a"),
    pytest.param("failed to set MSR 0x10A to 0x1", ["arch-capabilities"], id="upper-case-hex"),
    pytest.param(MSR_ERROR + " " + MSR_ERROR, ["arch-capabilities"], id="repeated-once"),
    pytest.param("failed to set MSR 0x48 to 0x1", [], id="msr-libvirt-has-no-feature-for"),
    pytest.param(UNKNOWN_MODEL, [], id="other-error"),
])
def test_features_kvm_cannot_set(error, features):
    assert features_kvm_cannot_set(error) == features


@pytest.mark.parametrize(("features", "xml"), [
    pytest.param(["arch-capabilities"], WITHOUT_ARCH_CAPS, id="one"),
    pytest.param(["a", "b"], "<cpu mode='host-model'><feature policy='disable' name='a'/>"
                             "<feature policy='disable' name='b'/></cpu>", id="two"),
])
def test_host_model_without(features, xml):
    assert host_model_without(features) == xml


def starter(errors: dict[str, str]):
    """A try_start that fails for the <cpu> elements in ``errors`` (with that text) and starts
    every other; it records what was tried, in order."""
    calls: list[str] = []

    def try_start(cpu_xml: str) -> str | None:
        calls.append(cpu_xml)
        return errors.get(cpu_xml)
    return try_start, calls


@pytest.mark.parametrize(("first", "errors", "name", "xml", "tried"), [
    pytest.param(None, {}, "host-model", HOST_MODEL, [HOST_MODEL], id="host-model-starts"),
    pytest.param(None, {HOST_MODEL: MSR_ERROR}, "host-model-without-arch-capabilities", WITHOUT_ARCH_CAPS,
                 [HOST_MODEL, WITHOUT_ARCH_CAPS], id="msr-error-disables-arch-capabilities"),
    pytest.param(None, {HOST_MODEL: MSR_ERROR, WITHOUT_ARCH_CAPS: "error: still failing"},
                 "hypervisor-default", HYPERVISOR_DEFAULT, [HOST_MODEL, WITHOUT_ARCH_CAPS, HYPERVISOR_DEFAULT],
                 id="then-the-hypervisor-default"),
    pytest.param(None, {HOST_MODEL: "error: some other failure"}, "hypervisor-default", HYPERVISOR_DEFAULT,
                 [HOST_MODEL, HYPERVISOR_DEFAULT], id="other-error-skips-to-default"),
    pytest.param(GIVEN, {}, "given", GIVEN, [GIVEN], id="given-first-starts"),
    pytest.param(GIVEN, {GIVEN: UNKNOWN_MODEL, HOST_MODEL: MSR_ERROR}, "host-model-without-arch-capabilities",
                 WITHOUT_ARCH_CAPS, [GIVEN, HOST_MODEL, WITHOUT_ARCH_CAPS], id="given-fails-then-usual-order"),
])
def test_choose_cpu(first, errors, name, xml, tried):
    try_start, calls = starter(errors)
    chosen = choose_cpu(try_start, first)
    assert (chosen["name"], chosen["xml"]) == (name, xml)
    assert calls == tried
    assert [t["xml"] for t in chosen["tried"]] == tried
    assert [t["error"] for t in chosen["tried"]] == [errors.get(x) for x in tried]
    assert chosen["xml"] == "" or chosen["xml"].startswith("<cpu ")  # "": no <cpu> element at all


def test_a_lab_of_mixed_releases_tries_the_fleet_baseline_first():
    """A host-model guest of the newer release cannot go back (its live CPU names features the older
    libvirt does not know): a mixed lab pins a named model, as a mixed fleet does."""
    try_start, calls = starter({})
    assert choose_cpu(try_start, mixed_releases=True)["xml"] == FLEET_BASELINE
    try_start, calls = starter({FLEET_BASELINE: "error: model kvm64 not usable"})
    assert choose_cpu(try_start, mixed_releases=True)["name"] == "host-model"
    assert calls == [FLEET_BASELINE, HOST_MODEL]
    try_start, calls = starter({})
    assert choose_cpu(try_start)["name"] == "host-model" and calls == [HOST_MODEL]


def test_choose_cpu_exits_with_every_error_when_nothing_starts(capsys):
    try_start, calls = starter({HOST_MODEL: MSR_ERROR, WITHOUT_ARCH_CAPS: "error: again",
                                HYPERVISOR_DEFAULT: "error: not even the default"})
    with pytest.raises(SystemExit) as exit_:
        choose_cpu(try_start)
    assert exit_.value.code == 2
    assert calls == [HOST_MODEL, WITHOUT_ARCH_CAPS, HYPERVISOR_DEFAULT]
    err = capsys.readouterr().err
    assert "lab: error: no guest CPU definition starts on this machine" in err
    for line in ("host-model: " + MSR_ERROR, "host-model-without-arch-capabilities: error: again",
                 "hypervisor-default: error: not even the default"):
        assert line in err


# ---------------------------------------------------------------- LUKS image retry

PBKDF = "qemu-img: IMG: Unable to get accurate CPU usage"


def qemu_img(stderrs: list[str]):
    """A runner standing in for qemu-img: each call fails with the next stderr ("" = success)."""
    calls: list[list[str]] = []

    def run(argv: list[str], **_kw: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        err = stderrs[len(calls) - 1]
        return subprocess.CompletedProcess(argv, 1 if err else 0, "", err)
    return run, calls


@pytest.mark.parametrize(("stderrs", "runs", "sleeps", "exits"), [
    pytest.param([""], 1, [], False, id="first-attempt"),
    pytest.param([PBKDF, ""], 2, [0.2], False, id="pbkdf-benchmark-retried"),
    pytest.param([PBKDF] * 4 + [""], 5, [0.2, 0.4, 0.6, 0.8], False, id="success-on-last-attempt"),
    pytest.param([PBKDF] * 5, 5, [0.2, 0.4, 0.6, 0.8], True, id="gives-up-after-attempts"),
    pytest.param(["qemu-img: IMG: Permission denied"], 1, [], True, id="other-error-not-retried"),
    pytest.param([PBKDF, "qemu-img: IMG: No space left"], 2, [0.2], True, id="other-error-after-retry"),
])
def test_create_luks_image_retries_only_the_pbkdf_benchmark(stderrs, runs, sleeps, exits, capsys):
    run, calls = qemu_img(stderrs)
    slept: list[float] = []
    img, pf = Path("/nonexistent/img.luks"), Path("/nonexistent/pass")
    if exits:
        with pytest.raises(SystemExit) as exit_:
            create_luks_image(img, pf, run=run, sleep=slept.append)
        assert exit_.value.code == 2
        assert stderrs[runs - 1] in capsys.readouterr().err
    else:
        create_luks_image(img, pf, run=run, sleep=slept.append)
    assert len(calls) == runs and slept == pytest.approx(sleeps)
    # The passphrase reaches qemu-img through a file object, never argv.
    assert all(f"secret,id=sec0,file={pf}" in argv and str(img) in argv for argv in calls)


# ---------------------------------------------------------------- dirty-memory boot sector

def test_dirtier_fits_a_boot_sector_and_stores_what_the_lab_reads():
    assert 0 < len(DIRTIER) <= 510  # the rest of the sector: padding, then 55 AA
    # The constants the lab checks are the program's own immediates (little-endian).
    for value in (FILL_START, FILL_END, DIRTY_WORD):
        assert value.to_bytes(4, "little") in DIRTIER
    assert FILL_DONE_AT.to_bytes(2, "little") in DIRTIER
    assert DIRTIER[0] == 0xFA  # cli


@pytest.mark.parametrize(("end", "plausible"), [
    pytest.param(None, False, id="no-reply"),
    pytest.param(0, False, id="not-written-yet"),
    pytest.param(0x100000, False, id="nothing-filled"),
    pytest.param(0x4100000, True, id="full-fill"),
    pytest.param(0x2000000, True, id="clamped-to-a-smaller-guest"),
    pytest.param(0x4101000, False, id="beyond-fill-end"),
    pytest.param(0x2000004, False, id="not-page-aligned"),
    pytest.param(0xF000FF53, False, id="bios-leftover"),
])
def test_fill_end_plausible(end, plausible):
    assert fill_end_plausible(end) is plausible
