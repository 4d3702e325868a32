-- A static IPv6 address per instance beside its IPv4 one (when the bridge has
-- IPv6): held while the row holds it, never by two rows at once.
ALTER TABLE instances ADD COLUMN ipv6 TEXT;
CREATE UNIQUE INDEX instances_ipv6 ON instances(ipv6);
