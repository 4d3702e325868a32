-- When a job first started: how long it waited shows whether claiming is fair.
ALTER TABLE jobs ADD COLUMN started_at TEXT;
