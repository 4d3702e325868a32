-- per-member quota overrides on top of the tier (JSON object)
ALTER TABLE users ADD COLUMN quota_overrides TEXT NOT NULL DEFAULT '{}';
