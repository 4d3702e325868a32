-- Personal access tokens for the JSON API (app/tokens.py): only the token's
-- SHA-256 is stored; the token itself is shown once, when it is made.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,  -- the first characters, so the owner can tell tokens apart
    scope TEXT NOT NULL CHECK (scope IN ('read', 'member', 'admin')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT,
    last_used_from TEXT,
    uses INTEGER NOT NULL DEFAULT 0,
    window_start TEXT,  -- the minute the rate limit counts in
    window_uses INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
-- Idempotency keys of API creates: a retried request with the same key and
-- body gets the first answer again instead of a second instance.
CREATE TABLE idempotency_keys (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,  -- SHA-256 of method, path and body
    status INTEGER,  -- NULL while the first request is still running
    body TEXT,
    location TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
-- Which token acted, for entries made through the API.
ALTER TABLE audit ADD COLUMN via TEXT;
