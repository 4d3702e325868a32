-- Websites: an instance published through the ingress proxy under its DNS
-- name. terminate: the proxy holds the certificate and forwards plain HTTP
-- to the instance's port; passthrough: TLS goes to the instance's port 443
-- untouched (its port 80 gets plain HTTP).
CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL UNIQUE REFERENCES instances(id) ON DELETE CASCADE,
    mode TEXT NOT NULL CHECK (mode IN ('terminate', 'passthrough')),
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    created_at TEXT NOT NULL
);
-- The proxy's certificates, one per host name, from the ACME directory. The
-- key and chain live in a file (owner-only); this row says how it stands:
-- state pending (never issued yet), valid, or failed (no certificate yet and
-- the last attempt failed). error and next_attempt_at survive a valid
-- certificate whose renewal fails.
CREATE TABLE certificates (
    hostname TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'valid', 'failed')),
    serial TEXT,
    not_before TEXT,
    not_after TEXT,
    renew_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    error TEXT,
    updated_at TEXT NOT NULL
);
