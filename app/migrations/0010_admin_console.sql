-- the admin console: audit log, approval queue, invitations, member deletion
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
