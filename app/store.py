"""The only module that opens Warren's SQLite database (via sqlite-utils).

The schema is versioned: app/migrations/NNNN_*.sql takes the database from
version NNNN-1 to NNNN (PRAGMA user_version). Pending migrations are applied
at start, one statement at a time, inside one transaction, so a crash
mid-upgrade leaves the old version intact.
"""
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils
from flask import current_app, g

from .errors import WarrenError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrations() -> list[Path]:
    """The migration files in order: NNNN_name.sql takes the schema from
    version NNNN-1 to NNNN."""
    files = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    for number, path in enumerate(files, start=1):
        if int(path.name[:4]) != number:
            raise StoreError(f"migration {path.name} is out of sequence (expected {number:04d}_...)")
    return files


def statements(sql: str) -> list[str]:
    """The complete SQL statements of a script, in order. SQLite itself says
    where each one ends, so a ';' inside a string, a comment or a trigger
    body does not split it."""
    found, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                found.append(pending.strip())
            pending = ""
    if pending.strip() and not all(part.strip().startswith("--") or not part.strip()
                                   for part in pending.splitlines()):
        raise StoreError(f"incomplete SQL statement at the end: {pending.strip()[:80]}")
    return found


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


def connect_readonly(path: str) -> sqlite3.Connection:
    """A read-only connection (for helpers sshd runs, which must never write
    or create the database)."""
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open database {path} read-only: {error}") from None


def schema_version(db: sqlite_utils.Database) -> int:
    """The schema version recorded in the database."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every pending migration; return the resulting version."""
    files = migrations()
    with transaction(db):
        version = schema_version(db)
        if version > len(files):
            raise StoreError(f"database schema version {version} is newer than this Warren "
                             f"({len(files)}); upgrade Warren")
        for number in range(version, len(files)):
            for statement in statements(files[number].read_text()):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
    return schema_version(db)


def new_id(db: sqlite_utils.Database, table: str) -> int:
    """An id for a new row of `table` that was never used before, even by a
    deleted row (inside the caller's transaction)."""
    key = f"next_id.{table}"
    value = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    highest = db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    given = max(int(value[0]) if value else 1, highest + 1)
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
               "SET value = excluded.value", [key, str(given + 1)])
    return given


def select_rows(db: sqlite_utils.Database, sql: str, params=()) -> list[dict]:
    """The rows of a query as dicts. For hot paths: `db[table].rows_where`
    first asks the schema whether the table is a view, three queries each
    time."""
    cursor = db.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


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
