"""The off-host copy of the backup directory with Debian's restic (real
restic, a local repository): deduplicated, encrypted, restorable, and a
wrong password is a clear error."""
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from app import offsite
from app.offsite import OffsiteError

MARKER = b"warren-offsite-plaintext-marker"


@pytest.fixture
def settings(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "web.tar.gz").write_bytes(MARKER + os.urandom(4 * 1024 * 1024))
    return SimpleNamespace(backup_dir=str(backups), data_dir=str(tmp_path / "data"),
                           backup_offsite_repository=str(tmp_path / "repository"),
                           backup_offsite_password_file=str(tmp_path / "data" / "offsite-password"),
                           backup_keep_daily=7, backup_keep_weekly=4)


def test_a_second_copy_adds_almost_nothing_and_the_copy_restores_encrypted(settings, tmp_path):
    first = offsite.copy(settings)
    assert first["files_new"] == 1 and first["data_added"] > 4 * 1024 * 1024 * 0.9
    mode = stat.S_IMODE(os.stat(settings.backup_offsite_password_file).st_mode)
    assert mode == 0o600
    second = offsite.copy(settings)  # nothing changed: only restic's own metadata
    assert second["files_new"] == 0 and second["data_added"] < 64 * 1024
    repository = Path(settings.backup_offsite_repository)
    assert not any(MARKER in path.read_bytes() for path in repository.rglob("*") if path.is_file())
    target = tmp_path / "restored"
    offsite._restic(settings, "restore", "latest", "--target", str(target))
    original = Path(settings.backup_dir, "web.tar.gz").read_bytes()
    assert (target / settings.backup_dir.lstrip("/") / "web.tar.gz").read_bytes() == original


def test_a_wrong_password_is_a_clear_error(settings):
    offsite.copy(settings)
    Path(settings.backup_offsite_password_file).write_text("not the password\n")
    with pytest.raises(OffsiteError, match="restic cat failed: .*wrong password"):
        offsite.copy(settings)
