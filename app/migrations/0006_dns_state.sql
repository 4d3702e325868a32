-- DNS state per instance, and removals still owed to the DNS server
ALTER TABLE instances ADD COLUMN dns_state TEXT NOT NULL DEFAULT 'pending';
CREATE TABLE dns_removals (
    fqdn TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL
);
