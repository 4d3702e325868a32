"""The store: versioned schema and explicit transactions."""
import pytest

from app import store


def user_row() -> dict:
    return {"username": "bob", "password_hash": "x", "role": "member",
            "created_at": store.now(), "password_changed_at": store.now()}


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path):
    db = store.connect(str(tmp_path / "w.sqlite3"))
    assert store.schema_version(db) == 0
    assert store.migrate(db) == len(store.migrations())
    assert store.migrate(db) == len(store.migrations())
    assert {"users", "sessions"} <= set(db.table_names())


def test_statements_split_where_sqlite_says_not_at_every_semicolon():
    script = ("-- a comment; with a semicolon\nCREATE TABLE t (x TEXT DEFAULT 'a;b');\n"
              "CREATE TRIGGER t_guard BEFORE INSERT ON t WHEN NEW.x IS NULL\n"
              "    BEGIN SELECT RAISE(ABORT, 'x; is required'); END;\n"
              "INSERT INTO t VALUES ('c;d');\n")
    found = store.statements(script)
    assert len(found) == 3
    assert found[1].startswith("CREATE TRIGGER") and found[1].endswith("END;")


def test_every_migration_file_applies_statement_by_statement(tmp_path):
    db = store.connect(str(tmp_path / "w.sqlite3"))
    for number, path in enumerate(store.migrations(), start=1):
        assert path.name.startswith(f"{number:04d}_")
        assert store.statements(path.read_text()), path.name
    store.migrate(db)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'instances_lxd_name'").fetchone()[0] == 1


def test_ids_are_never_handed_out_twice(tmp_path):
    db = store.connect(str(tmp_path / "w.sqlite3"))
    store.migrate(db)
    row = user_row()
    with store.transaction(db):
        first = store.new_id(db, "users")
        db["users"].insert({**row, "id": first})
    db.execute("DELETE FROM users WHERE id = ?", [first])
    with store.transaction(db):
        second = store.new_id(db, "users")
    assert second > first
    assert db["users"].insert({**row, "username": "carol"}).last_pk == first  # what plain SQLite does


def test_a_newer_schema_is_refused(tmp_path):
    db = store.connect(str(tmp_path / "w.sqlite3"))
    db.execute(f"PRAGMA user_version = {len(store.migrations()) + 1}")
    with pytest.raises(store.StoreError, match="newer than this Warren"):
        store.migrate(db)


def test_transaction_rolls_back_on_error(tmp_path):
    db = store.connect(str(tmp_path / "w.sqlite3"))
    store.migrate(db)
    row = user_row()
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            db["users"].insert(row)
            raise RuntimeError("boom")
    assert db["users"].count == 0
    with store.transaction(db):
        db["users"].insert(row)
    assert db["users"].count == 1


def test_database_file_is_private(tmp_path):
    path = tmp_path / "w.sqlite3"
    store.connect(str(path))
    assert path.stat().st_mode & 0o777 == 0o600


def test_unopenable_database_names_the_path(tmp_path):
    with pytest.raises(store.StoreError, match="cannot open database"):
        store.connect(str(tmp_path / "missing-dir" / "w.sqlite3"))


def test_opening_more_connections_keeps_the_wal_of_open_ones(tmp_path):
    """Regression: connect() must not release this process's SQLite locks,
    or another process's close deletes a WAL that is still in use."""
    import subprocess
    import sys
    path = str(tmp_path / "w.sqlite3")
    first = store.connect(path)
    store.migrate(first)
    first.execute("CREATE TABLE t (x)")
    second = store.connect(path)  # the same process opens the file again
    second.conn.close()
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('select 1 from t').fetchall(); c.close()", path], check=True)
    first.execute("INSERT INTO t VALUES (1)")
    assert (tmp_path / "w.sqlite3-wal").exists()
    fresh = store.connect(path)
    assert fresh.execute("SELECT count(*) FROM t").fetchone()[0] == 1


# A migration that has landed is never edited: databases already past it would
# never see the change. A new change is a new file (the next number).
LANDED = {
    "0001_accounts.sql": "5e52fb29bb1be856",
    "0002_instances_jobs.sql": "8935860f79f1c64e",
    "0003_quota_overrides.sql": "b10051a2a60420f0",
    "0004_login_failures.sql": "74a3fccd9cc43c78",
    "0005_tiers.sql": "7ab4a067ae1bdbf9",
    "0006_dns_state.sql": "34ace02039918415",
    "0007_installation.sql": "5d2a2e7a72e3099c",
    "0008_leases.sql": "bcb3dc64f17adf7d",
    "0009_job_claims.sql": "af9ed0d136f486f7",
    "0010_admin_console.sql": "9554bece3311a921",
    "0011_host_unique_names.sql": "46d93f1234d79631",
    "0012_job_started_at.sql": "bd047a7cc4a25b51",
    "0013_port_forwards.sql": "1638156e561b2141",
    "0014_instance_ipv6.sql": "1b5e87c2ed836517",
    "0015_member_dns_records.sql": "fafc643e06affc18",
    "0016_sites_certificates.sql": "074e901f70f53122",
    "0017_domains.sql": "5acc6547e48fc5e4",
    "0018_api_tokens.sql": "45f86ec03eac1656",
    "0019_snapshots.sql": "b2fdb25f89139d33",
    "0020_backups.sql": "f8ac799020e8403b",
    "0021_events.sql": "c5683e16f7476a71",
    "0022_instance_location.sql": "af6dc0ee88cc88b5",
    "0023_maintenance.sql": "59226a0dbe09027e",
}


def test_landed_migrations_are_never_edited():
    import hashlib
    found = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
             for path in store.migrations() if path.name in LANDED}
    assert found == LANDED, "add a new migration file instead of editing one that has landed"


def test_a_database_migrated_one_step_at_a_time_ends_as_a_fresh_one(tmp_path):
    stepwise = store.connect(str(tmp_path / "a.sqlite3"))
    with store.transaction(stepwise):
        for migration in store.migrations()[:10]:
            for statement in store.statements(migration.read_text()):
                stepwise.execute(statement)
        stepwise.execute("PRAGMA user_version = 10")
    store.migrate(stepwise)
    fresh = store.connect(str(tmp_path / "b.sqlite3"))
    store.migrate(fresh)
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    assert stepwise.execute(schema).fetchall() == fresh.execute(schema).fetchall()
