"""The off-host copy: the backup directory copied into a restic repository
(WARREN_BACKUP_OFFSITE_REPOSITORY) after new backups. restic deduplicates
(a second copy of an unchanged instance costs almost nothing) and encrypts
with the password in WARREN_BACKUP_OFFSITE_PASSWORD_FILE, made on first
use. The only module that runs restic."""
import json
import os
import secrets
import subprocess
from pathlib import Path

from .errors import BackendUnavailable, WarrenError


class OffsiteError(WarrenError):
    """restic refused or failed."""


def enabled(settings) -> bool:
    """Whether an off-host repository is configured."""
    return bool(settings.backup_offsite_repository)


def _password_file(settings) -> str:
    path = Path(settings.backup_offsite_password_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return str(path)


def _restic(settings, *args: str, timeout: int = 6 * 3600) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "RESTIC_REPOSITORY": settings.backup_offsite_repository,
           "RESTIC_PASSWORD_FILE": _password_file(settings),
           "RESTIC_CACHE_DIR": str(Path(settings.data_dir, "restic-cache"))}
    try:
        result = subprocess.run(["restic", *args], env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BackendUnavailable("restic is not installed (bin/up installs it)") from None
    except subprocess.TimeoutExpired:
        raise OffsiteError(f"restic {args[0]} did not finish within {timeout} s") from None
    if result.returncode != 0:
        raise OffsiteError(f"restic {args[0]} failed: {(result.stderr or result.stdout).strip()[-300:]}")
    return result.stdout


MISSING = ("Is there a repository at the following location?", "unable to open config file")


def ensure_repository(settings) -> bool:
    """Initialise the repository unless it exists; True when made now."""
    try:
        _restic(settings, "cat", "config")
        return False
    except OffsiteError as error:
        # restic 0.14 says so in words only (no exit code of its own): any
        # other failure, a wrong password above all, must not lead to init.
        if not any(words in str(error) for words in MISSING):
            raise
    _restic(settings, "init")
    return True


def copy(settings) -> dict:
    """Copy the backup directory into the repository; restic's summary
    (files_new, data_added, total_duration, ...)."""
    ensure_repository(settings)
    out = _restic(settings, "backup", "--json", "--host", "warren", "--tag", "warren",
                  settings.backup_dir)
    summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line]
    if not summary:
        raise OffsiteError("restic backup gave no summary")
    _restic(settings, "forget", "--tag", "warren", "--keep-daily", str(settings.backup_keep_daily),
            "--keep-weekly", str(settings.backup_keep_weekly), "--prune")
    return summary[-1]
