-- Delivery metrics (the /stats page): one row per UTC day and environment, rebuilt by the
-- stats task from the deployments of that day whenever one of them changes. Durations are
-- log-scale histograms (`bucket:count,...`, see `domain::stats::Durations`), so any range
-- merges days without reading the history.
CREATE TABLE stats_daily (
    day BIGINT NOT NULL,
    environment TEXT NOT NULL,
    deployments BIGINT NOT NULL,
    succeeded BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    failed_changes BIGINT NOT NULL,
    rollbacks BIGINT NOT NULL,
    lead_times TEXT NOT NULL,
    lead_from_commit BIGINT NOT NULL,
    restore_times TEXT NOT NULL,
    PRIMARY KEY (day, environment)
);

-- How far the stats task has read: the last deployment and event it counted. Starting at
-- zero, the first run counts the whole history.
CREATE TABLE stats_progress (
    id BIGINT PRIMARY KEY,
    deployment_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL
);
INSERT INTO stats_progress (id, deployment_id, event_id) VALUES (1, 0, 0);

-- When a commit was made, as GitHub said (lead time from the commit). committed_at NULL
-- and looked_up_at set: GitHub did not know it; looked_up_at NULL: not asked yet.
CREATE TABLE commit_times (
    application_id BIGINT NOT NULL,
    sha TEXT NOT NULL,
    day BIGINT NOT NULL,
    committed_at BIGINT,
    looked_up_at BIGINT,
    PRIMARY KEY (application_id, sha)
);
CREATE INDEX commit_times_pending ON commit_times (looked_up_at);
