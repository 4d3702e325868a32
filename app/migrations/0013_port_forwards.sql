-- Port forwards: a port of the co-op's public address (TCP or UDP) that LXD's
-- network forward sends to a port of one instance. A public port serves one
-- forward per protocol, on the whole host.
CREATE TABLE forwards (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),
    public_port INTEGER NOT NULL CHECK (public_port BETWEEN 1 AND 65535),
    instance_port INTEGER NOT NULL CHECK (instance_port BETWEEN 1 AND 65535),
    created_at TEXT NOT NULL,
    UNIQUE (protocol, public_port)
);
CREATE INDEX forwards_instance ON forwards (instance_id);
-- The number of forwards a member may hold is part of the share tier.
UPDATE tiers SET quota = json_set(quota, '$.forwards', CASE name WHEN 'half' THEN 2 ELSE 4 END);
