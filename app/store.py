"""The only module that opens Warren's SQLite database (via sqlite-utils).

The schema is versioned: MIGRATIONS[n] takes the database from version n to
n+1 (PRAGMA user_version) and is applied at start inside one transaction, so
a crash mid-upgrade leaves the old version intact.
"""
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone

import sqlite_utils
from flask import current_app, g

from .errors import WarrenError

MIGRATIONS = (
    # 1: accounts and server-side sessions
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('member', 'admin')),
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE INDEX sessions_expiry ON sessions(expires_at);
    """,
    # 2: instances, the member's SSH keys, provisioning jobs and their events
    """
    ALTER TABLE users ADD COLUMN tier TEXT NOT NULL DEFAULT 'full';
    CREATE TABLE ssh_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL,
        public_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (user_id, fingerprint)
    );
    CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        project TEXT NOT NULL,
        profile TEXT NOT NULL,
        image TEXT NOT NULL,
        instance_type TEXT NOT NULL,
        fqdn TEXT NOT NULL UNIQUE,
        ipv4 TEXT UNIQUE,
        ssh_keys TEXT NOT NULL,
        cpu INTEGER NOT NULL,
        memory INTEGER NOT NULL,
        disk INTEGER NOT NULL,
        processes INTEGER NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        lease_expires_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (user_id, name)
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances(id),
        kind TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        claimed_until TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX jobs_open ON jobs(state, id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances(id),
        at TEXT NOT NULL,
        step TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_instance ON events(instance_id, id);
    """,
    # 3: per-member quota overrides on top of the tier (JSON object)
    """
    ALTER TABLE users ADD COLUMN quota_overrides TEXT NOT NULL DEFAULT '{}';
    """,
    # 4: failed sign-ins, shared by every gunicorn worker
    """
    CREATE TABLE login_failures (
        key TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(key, at);
    """,
    # 5: share tiers, editable by admins; seeded with a co-op's full and half share
    """
    CREATE TABLE tiers (
        name TEXT PRIMARY KEY,
        quota TEXT NOT NULL
    );
    INSERT INTO tiers VALUES ('full', '{"instances": 4, "cpu": 6, "memory": 6442450944,
        "disk": 42949672960, "processes": 6000, "nesting": true, "cpu_priority": 10}');
    INSERT INTO tiers VALUES ('half', '{"instances": 2, "cpu": 3, "memory": 3221225472,
        "disk": 21474836480, "processes": 3000, "nesting": false, "cpu_priority": 5}');
    """,
    # 6: DNS state per instance, and removals still owed to the DNS server
    """
    ALTER TABLE instances ADD COLUMN dns_state TEXT NOT NULL DEFAULT 'pending';
    CREATE TABLE dns_removals (
        fqdn TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 7: this installation's identity, stamped on everything it makes in LXD
    # and DNS, so it never takes another Warren's objects on the same host for its own
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('installation', lower(hex(randomblob(6))));
    """,
    # 8: lease bookkeeping (warned, expired) and renewals used
    """
    ALTER TABLE instances ADD COLUMN lease_state TEXT NOT NULL DEFAULT 'active';
    ALTER TABLE instances ADD COLUMN lease_renewals INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: which worker (host:pid) holds a job, so a dead one's jobs are released at once
    """
    ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
    """,
    # 10: the admin console: audit log, approval queue, invitations, member deletion
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        member TEXT,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        result TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_member ON audit(member, id);
    CREATE INDEX audit_action ON audit(action, id);
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('instance', 'quota')),
        instance_id INTEGER REFERENCES instances(id) ON DELETE CASCADE,
        wanted TEXT NOT NULL DEFAULT '{}',
        reason TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'denied')),
        decided_by TEXT,
        decision TEXT,
        created_at TEXT NOT NULL,
        decided_at TEXT
    );
    CREATE INDEX approvals_state ON approvals(state, id);
    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        tier TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_by TEXT,
        used_at TEXT
    );
    ALTER TABLE users ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
    """,
)


class StoreError(WarrenError):
    """The database could not be opened or migrated."""


def now() -> str:
    """The current UTC time as stored in the database (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _create_private(path: str) -> None:
    """Create the database file owner-only (accounts and sessions live here).

    Never opens an existing file: closing any descriptor of a file drops
    all of this process's POSIX locks on it, including those of other open
    SQLite connections, and SQLite would then delete a WAL still in use."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def connect(path: str) -> sqlite_utils.Database:
    """Open the database with the settings every connection needs."""
    try:
        _create_private(path)
        # isolation_level=None: transactions are explicit (see transaction()).
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"cannot open database {path}: {error}") from None
    conn.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts; a power cut may lose the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return sqlite_utils.Database(conn)


def schema_version(db: sqlite_utils.Database) -> int:
    """The schema version recorded in the database."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every pending migration; return the resulting version."""
    with transaction(db):
        version = schema_version(db)
        if version > len(MIGRATIONS):
            raise StoreError(f"database schema version {version} is newer than this Warren "
                             f"({len(MIGRATIONS)}); upgrade Warren")
        for number in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
    return schema_version(db)


@contextmanager
def transaction(db: sqlite_utils.Database):
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so a
    read-then-write inside cannot race another process."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def get_db() -> sqlite_utils.Database:
    """The request's database connection, opened on first use."""
    if "db" not in g:
        g.db = connect(current_app.config["WARREN"].database)
    return g.db


def close_db(_error=None):
    """Close the request's connection, if one was opened."""
    db = g.pop("db", None)
    if db is not None:
        db.conn.close()


def installation_id(db) -> str:
    """This installation's identity (made by migration 7)."""
    return db.execute("SELECT value FROM meta WHERE key = 'installation'").fetchone()[0]


def init_app(app):
    """Migrate the schema at start and close connections at teardown."""
    db = connect(app.config["WARREN"].database)
    try:
        migrate(db)
        app.extensions["warren.installation"] = installation_id(db)
    finally:
        db.conn.close()
    app.teardown_appcontext(close_db)
