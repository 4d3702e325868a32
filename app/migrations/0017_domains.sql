-- Custom domains: a host name outside Warren's zone that a member attaches to
-- one of their own instances, routed only once a DNS record the member
-- publishes proves it is theirs (app/domains.py). A host name belongs to one
-- member at a time, on one instance of theirs.
CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    hostname TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    token TEXT NOT NULL,  -- random per claim: the TXT proof names it
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'verified', 'lapsed')),
    proof TEXT CHECK (proof IN ('txt', 'cname')),  -- the way it was last proven
    created_at TEXT NOT NULL,
    checked_at TEXT,  -- the last lookup
    seen_at TEXT,  -- the last lookup that found the proof
    next_check_at TEXT NOT NULL,  -- the worker's pass looks again from then on
    misses INTEGER NOT NULL DEFAULT 0,  -- lookups in a row without the proof (the backoff)
    result TEXT  -- what the last lookup found, as the member reads it
);
CREATE INDEX domains_user ON domains (user_id);
CREATE INDEX domains_instance ON domains (instance_id);
CREATE INDEX domains_due ON domains (next_check_at);
-- The instance is always one of the domain's member's own.
CREATE TRIGGER domains_own_instance_insert BEFORE INSERT ON domains
WHEN (SELECT user_id FROM instances WHERE id = NEW.instance_id) IS NOT NEW.user_id
BEGIN
    SELECT RAISE(ABORT, 'a domain goes to an instance of its own member');
END;
CREATE TRIGGER domains_own_instance_update BEFORE UPDATE OF user_id, instance_id ON domains
WHEN (SELECT user_id FROM instances WHERE id = NEW.instance_id) IS NOT NEW.user_id
BEGIN
    SELECT RAISE(ABORT, 'a domain goes to an instance of its own member');
END;
-- The number of custom domains a member may hold is part of the share tier.
UPDATE tiers SET quota = json_set(quota, '$.domains', CASE name WHEN 'half' THEN 2 ELSE 4 END);
