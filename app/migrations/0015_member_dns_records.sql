-- Member DNS records: CNAME, TXT, MX, AAAA, SRV and CAA records a member
-- keeps under their own subtree (*.<member>.<zone>). The rows are what
-- should be in DNS; a job publishes them after each change, and the
-- reconcile pass repairs drift.
CREATE TABLE dns_records (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fqdn TEXT NOT NULL,
    rtype TEXT NOT NULL CHECK (rtype IN ('CNAME', 'TXT', 'MX', 'AAAA', 'SRV', 'CAA')),
    value TEXT NOT NULL,
    ttl INTEGER NOT NULL CHECK (ttl BETWEEN 60 AND 86400),
    created_at TEXT NOT NULL,
    UNIQUE (fqdn, rtype, value)
);
CREATE INDEX dns_records_user ON dns_records (user_id, fqdn);
-- TSIG keys BIND knows beside Warren's own: one per member that Warren
-- publishes their records with (confined by BIND to their subtree), and
-- the ACME keys members hand to certbot (one TXT name each).
CREATE TABLE dns_keys (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('member', 'acme')),
    name TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dns_keys_user ON dns_keys (user_id, kind);
-- Jobs may belong to a member instead of an instance (publishing the
-- member's records): instance_id becomes optional, user_id is new.
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER REFERENCES instances(id),
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    claimed_by TEXT,
    started_at TEXT,
    CHECK (instance_id IS NOT NULL OR user_id IS NOT NULL)
);
INSERT INTO jobs_new (id, instance_id, kind, state, attempts, claimed_until, error, created_at,
                      finished_at, claimed_by, started_at)
    SELECT id, instance_id, kind, state, attempts, claimed_until, error, created_at, finished_at,
           claimed_by, started_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_open ON jobs(state, id);
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_instance ON jobs(instance_id, state);
CREATE INDEX jobs_user ON jobs(user_id, state);
-- How many records a member may keep is part of the share tier.
UPDATE tiers SET quota = json_set(quota, '$.records', CASE name WHEN 'half' THEN 10 ELSE 20 END);
