-- Which worker (host:pid) carries out a maintenance request, so one that
-- died is resumed by the next worker's start (app/maintenance.py resume).
ALTER TABLE maintenance ADD COLUMN claimed_by TEXT;
