"""coordinator.files.keyfile: key files (secret values, SSH keys) must be owner-only regular files."""
from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.core.errors import BadInput
from coordinator.files.keyfile import check_key_file


def key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o007])
def test_check_key_file_refuses_loose_modes(tmp_path, mode):
    p = key(tmp_path / "k", b"v", mode)
    with pytest.raises(BadInput) as ei:
        check_key_file(p)
    assert str(p) in str(ei.value)
    assert f"chmod 600 {p}" in str(ei.value)
    assert f"{mode:04o}" in str(ei.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_check_key_file_accepts_owner_only(tmp_path, mode):
    assert check_key_file(key(tmp_path / "k", b"v", mode)) is None


def test_check_key_file_refuses_missing(tmp_path):
    p = tmp_path / "absent"
    with pytest.raises(BadInput, match="does not exist") as ei:
        check_key_file(p)
    assert str(p) in str(ei.value)


def test_check_key_file_refuses_directory(tmp_path):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    with pytest.raises(BadInput, match="not a regular file"):
        check_key_file(d)
