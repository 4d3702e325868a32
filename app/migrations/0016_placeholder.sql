-- Placeholder: this number belongs to a branch developed in parallel. Drop
-- this file when that branch's own 0016_*.sql is merged.
SELECT 1;
