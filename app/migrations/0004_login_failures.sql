-- failed sign-ins, shared by every gunicorn worker
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(key, at);
