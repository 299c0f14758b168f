-- A rollback freezes automatic promotion *from* its environment for the app (not deploys):
-- `from_environment` set. NULL: an ordinary freeze of deploys.
ALTER TABLE freezes ADD COLUMN from_environment TEXT;
