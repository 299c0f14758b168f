-- Browser sessions, in our own table so that their writes take the same write path as
-- every other write (tower-sessions' record as JSON; expiry in ms since the epoch).
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
