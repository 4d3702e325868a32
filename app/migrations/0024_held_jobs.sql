-- A job held back while the cluster member its instance runs on is offline
-- (app/provisioning.py): it stays pending, is not claimed before not_before,
-- and held says why it waits (shown in the instance's history once).
ALTER TABLE jobs ADD COLUMN not_before TEXT;
ALTER TABLE jobs ADD COLUMN held TEXT;
