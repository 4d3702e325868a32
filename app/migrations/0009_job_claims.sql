-- which worker (host:pid) holds a job, so a dead one's jobs are released at once
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
