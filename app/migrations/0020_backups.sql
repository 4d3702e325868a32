-- Backups of instances through LXD's backup API, kept as files in the backup
-- directory (app/backup_files.py). A row outlives its instance's row (no
-- foreign key on instance_id): an admin may restore a deleted instance from
-- it while it is retained. manifest holds what the restore of a deleted
-- instance needs besides the disk: its row, forwards, website and the
-- member's DNS records at its name, as they were at backup time (JSON).
CREATE TABLE backups (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL CHECK (reason IN ('schedule', 'manual')),
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    file TEXT,  -- relative to the backup directory, once complete
    size INTEGER,
    sha256 TEXT,
    manifest TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX backups_instance ON backups (instance_id, state, id);
CREATE INDEX backups_user ON backups (user_id);
-- The backup a backup or restore job works on.
ALTER TABLE jobs ADD COLUMN backup_id INTEGER REFERENCES backups(id) ON DELETE SET NULL;
