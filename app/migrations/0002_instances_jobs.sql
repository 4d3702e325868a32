-- instances, the member's SSH keys, provisioning jobs and their events
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
