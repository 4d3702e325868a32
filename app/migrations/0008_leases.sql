-- lease bookkeeping (warned, expired) and renewals used
ALTER TABLE instances ADD COLUMN lease_state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE instances ADD COLUMN lease_renewals INTEGER NOT NULL DEFAULT 0;
