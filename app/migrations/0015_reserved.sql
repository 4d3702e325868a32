-- Stands in for migration 0015 of a branch developed alongside this one;
-- that branch's file replaces this one when the two are merged.
SELECT 1;
