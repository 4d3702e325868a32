-- this installation's identity, stamped on everything it makes in LXD
-- and DNS, so it never takes another Warren's objects on the same host for its own
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('installation', lower(hex(randomblob(6))));
