-- Placeholder: the real migration 0019 arrives with another branch.
SELECT 1;
