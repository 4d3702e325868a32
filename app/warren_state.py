"""Warren's own state: `flask backup` writes a consistent copy of everything
Warren needs to come back, `flask restore PATH` puts it back (on this
machine or a fresh one) and brings back the instances from their backups.

A copy is a folder <backup dir>/warren/<UTC time>/ (0700, files 0600):

    database.sqlite3   the database, through SQLite's online backup API
                       (a consistent snapshot while Warren runs; never a file copy)
    dns/               the zone file and its journal (after `rndc sync`), the
                       TSIG keys, the members' key fragments, the DNSSEC keys
    profiles/          the profile files
    secret-key         the key that signs cookies and CSRF tokens
    ssh/, ingress/     the jump server's host keys; the proxy's certificates
                       and ACME account
    offsite-password   the off-host repository's password, when there is one
    config.toml        the WARREN_CONFIG file, when there is one
    settings.env       every resolved setting (python -m app.config --shell)
    MANIFEST.json      each file's sha256, mode and owner; written last

It is written under a temporary name and renamed when complete, and the
restore reads MANIFEST.json first and checks every file against it before
anything is replaced.
"""
import grp
import hashlib
import json
import os
import pwd
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from . import backup_files
from .backup_schedule import Made, to_keep
from .config import shell_exports
from .dns.files import state_files, sync_zone
from .errors import WarrenError

FOLDER = "warren"
MANIFEST = "MANIFEST.json"
PREFIX = backup_files.TEMP_PREFIX


class StateBackupError(WarrenError):
    """A copy of Warren's state is incomplete or altered."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(backup_files.CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _owner(stat) -> tuple[str, str]:
    try:
        user = pwd.getpwuid(stat.st_uid).pw_name
    except KeyError:
        user = str(stat.st_uid)
    try:
        group = grp.getgrgid(stat.st_gid).gr_name
    except KeyError:
        group = str(stat.st_gid)
    return user, group


def _sources(settings) -> dict[str, tuple[Path, Path]]:
    """What is copied: name in the copy -> (source folder, path inside it)."""
    found = {}
    for relative in state_files(settings):
        found[f"dns/{relative}"] = (Path(settings.dns_dir), relative)
    for folder, prefix in ((settings.profiles_dir, "profiles"), (settings.ssh_dir, "ssh"),
                           (settings.ingress_dir, "ingress")):
        base = Path(folder)
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file() and not path.is_symlink() and path.suffix not in (".sock", ".pid"):
                    found[f"{prefix}/{path.relative_to(base)}"] = (base, path.relative_to(base))
    for name, path in (("secret-key", settings.secret_key_file),
                       ("offsite-password", settings.backup_offsite_password_file),
                       ("config.toml", os.environ.get("WARREN_CONFIG", ""))):
        if path and Path(path).is_file():
            found[name] = (Path(path).parent, Path(Path(path).name))
    return found


def back_up(settings) -> Path:
    """Write a copy of Warren's state; its folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = Path(settings.backup_dir, FOLDER)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(settings.backup_dir, 0o700)
    final, temp = root / stamp, root / (PREFIX + stamp)
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(mode=0o700)
    files = {}
    try:
        target = temp / "database.sqlite3"
        source = sqlite3.connect(f"file:{settings.database}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        with copy:
            source.backup(copy)
        source.close()
        copy.close()
        files["database.sqlite3"] = {"mode": 0o600, "owner": ["root", "root"]}
        dns_note = sync_zone(settings)
        for name, (base, relative) in _sources(settings).items():
            path = temp / name
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                stat = (base / relative).stat()
                shutil.copyfile(base / relative, path)
            except FileNotFoundError:
                continue  # gone since it was listed (a file named or a proxy replaced)
            files[name] = {"mode": stat.st_mode & 0o7777, "owner": list(_owner(stat))}
        (temp / "settings.env").write_text(shell_exports(settings) + "\n")
        files["settings.env"] = {"mode": 0o600, "owner": ["root", "root"]}
        for name, facts in files.items():
            os.chmod(temp / name, 0o600)
            facts["sha256"] = _sha256(temp / name)
        manifest = {"made_at": stamp, "dns_sync": dns_note or "ok", "files": files}
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.chmod(temp / MANIFEST, 0o600)
        for path in temp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        os.rename(temp, final)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        if error.errno in (28, 122):  # ENOSPC, EDQUOT
            raise backup_files.BackupDiskFull(backup_files.disk_full_message(settings.backup_dir)) from None
        raise StateBackupError(f"the copy of Warren's state failed: {error}") from None
    return final


def copies(settings) -> list[Path]:
    """The complete copies of Warren's state, oldest first."""
    root = Path(settings.backup_dir, FOLDER)
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir()
                  if path.is_dir() and not path.name.startswith(PREFIX) and (path / MANIFEST).exists())


def _made_at(path: Path) -> datetime:
    return datetime.strptime(path.name, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def prune(settings) -> list[str]:
    """Retention for the copies of Warren's state (the same daily and
    weekly counts as instances'), and leftovers of interrupted copies."""
    root = Path(settings.backup_dir, FOLDER)
    removed = []
    if root.is_dir():
        for leftover in root.glob(PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
    made = copies(settings)
    keep = to_keep([Made(path, _made_at(path)) for path in made], settings.backup_keep_daily,
                   settings.backup_keep_weekly)
    for path in made:
        if path not in keep:
            shutil.rmtree(path)
            removed.append(path.name)
    return removed


def verify(copy: Path) -> dict:
    """The copy's manifest, once every file in it matches; StateBackupError
    naming the first that does not."""
    try:
        manifest = json.loads((copy / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise StateBackupError(f"{copy} is not a complete copy of Warren's state "
                               f"({MANIFEST}: {error})") from None
    for name, facts in manifest["files"].items():
        path = copy / name
        if not path.is_file() or _sha256(path) != facts["sha256"]:
            raise StateBackupError(f"{copy}: {name} is missing or damaged (its sha256 does not "
                                   "match the manifest); nothing was restored")
    return manifest


def _place(source: Path, target: Path, facts: dict) -> None:
    """Copy a file into place atomically with its recorded mode and owner."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(PREFIX + target.name)
    shutil.copyfile(source, temp)
    os.chmod(temp, facts["mode"])
    if os.geteuid() == 0:
        user, group = facts["owner"]
        try:
            os.chown(temp, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        except KeyError:
            pass  # no such account here: root keeps it
    os.replace(temp, target)


def restore(settings, copy: Path) -> list[str]:
    """Put a copy of Warren's state back in place (Warren stopped: bin/down);
    what was done, a line each. The database goes in through SQLite's
    backup API; a database already there is kept next to it first."""
    manifest = verify(copy)
    done = []
    database = Path(settings.database)
    database.parent.mkdir(parents=True, exist_ok=True)
    if database.exists():
        kept = Path(f"{database}.before-restore")
        with sqlite3.connect(database) as current, sqlite3.connect(kept) as copy_of_current:
            current.backup(copy_of_current)
        os.chmod(kept, 0o600)
        done.append(f"kept the database that was there as {kept}")
    if not database.exists():  # owner-only from the start (accounts live in it)
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    with sqlite3.connect(f"file:{copy / 'database.sqlite3'}?mode=ro", uri=True) as source, \
            sqlite3.connect(database) as target:
        source.backup(target)
    done.append(f"restored the database into {database}")
    places = {"dns": Path(settings.dns_dir), "profiles": Path(settings.profiles_dir),
              "ssh": Path(settings.ssh_dir), "ingress": Path(settings.ingress_dir)}
    singles = {"secret-key": None if settings.secret_key else Path(settings.secret_key_file),
               "offsite-password": Path(settings.backup_offsite_password_file)}
    counts: dict[str, int] = {}
    for name, facts in manifest["files"].items():
        head, _, rest = name.partition("/")
        if head in places and rest:
            _place(copy / name, places[head] / rest, facts)
            counts[head] = counts.get(head, 0) + 1
        elif singles.get(name) is not None:
            _place(copy / name, singles[name], facts)
            done.append(f"restored {name} into {singles[name]}")
    for head, count in sorted(counts.items()):
        done.append(f"restored {count} file(s) of {head}/ into {places[head]}")
    if (Path(settings.dns_dir)).is_dir():
        os.chmod(settings.dns_dir, 0o750)
    if "config.toml" in manifest["files"]:
        done.append(f"the configuration file is in {copy / 'config.toml'}: put it where "
                    "WARREN_CONFIG points (settings.env lists every setting)")
    return done
