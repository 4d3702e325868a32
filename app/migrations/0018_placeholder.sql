-- Placeholder: the real migration 0018 arrives with another branch.
SELECT 1;
