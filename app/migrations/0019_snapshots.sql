-- Snapshots of members' instances (app/snapshots.py). LXD holds the snapshots
-- themselves; a row is Warren's record of one: every snapshot a member takes
-- by hand (they count against the share's `snapshots` cap), and any snapshot
-- (a scheduled one too) while the worker still has to take, restore or
-- delete it (`action`). A name is unique per instance, as in LXD.
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    manual INTEGER NOT NULL CHECK (manual IN (0, 1)),
    action TEXT CHECK (action IN ('take', 'restore', 'delete')),  -- NULL: nothing left to do
    created_at TEXT NOT NULL,
    UNIQUE (instance_id, name)
);
CREATE INDEX snapshots_pending ON snapshots (action) WHERE action IS NOT NULL;
-- The bytes an instance's snapshots hold (LXD's snapshot sizes, measured by
-- the worker): they count against the member's disk quota with the root disk.
ALTER TABLE instances ADD COLUMN snapshot_bytes INTEGER NOT NULL DEFAULT 0;
-- The number of manual snapshots a member may hold is part of the share tier.
UPDATE tiers SET quota = json_set(quota, '$.snapshots', CASE name WHEN 'half' THEN 5 ELSE 10 END);
