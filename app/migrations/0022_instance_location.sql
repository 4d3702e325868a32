-- Where an instance runs: the LXD cluster member LXD placed it on (empty on
-- a single daemon). Written when the instance is created and whenever the
-- worker sees LXD report another member (an evacuation or a move).
ALTER TABLE instances ADD COLUMN location TEXT NOT NULL DEFAULT '';
