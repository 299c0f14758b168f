-- Who may lift a freeze: 'admin' or 'deployer', the authority of whoever set it.
-- Freezes set before this column existed are treated as an admin's (the safe side).
ALTER TABLE freezes ADD COLUMN authority TEXT NOT NULL DEFAULT 'admin';
