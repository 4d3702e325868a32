-- Cluster maintenance (app/maintenance.py): an admin's evacuation or restore
-- of an LXD cluster member, carried out by the worker's maintenance pass.
-- plan is what LXD was going to do, listed when it was asked for (JSON:
-- [{"project", "name", "stays"}]), so the history shows what was promised.
CREATE TABLE maintenance (
    id INTEGER PRIMARY KEY,
    member TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('evacuate', 'restore')),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    finished_at TEXT,
    plan TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE INDEX maintenance_state ON maintenance (state);

-- The member an admin asked an instance to move to (a move job's target).
ALTER TABLE instances ADD COLUMN move_to TEXT;
