-- Manual deploys from the dashboard, deploy freezes, and the audit log.
ALTER TABLE deployments ADD COLUMN run_url TEXT;

-- One in-flight manual deploy per application and environment. A row is taken before
-- GitHub is called and dropped when the dispatch fails; it stops counting once its
-- deployment finishes or it has heard nothing for the stall time.
CREATE TABLE deploy_locks (
    application_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    deployment_id BIGINT,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, environment)
);

-- application_id NULL: the whole site is frozen.
CREATE TABLE freezes (
    id BIGSERIAL PRIMARY KEY,
    application_id BIGINT,
    reason TEXT NOT NULL,
    frozen_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    lifted_by TEXT,
    lifted_at BIGINT
);
CREATE INDEX freezes_active ON freezes (application_id, lifted_at);

-- Append-only: the app has no statement that updates or deletes a row here.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    application TEXT,
    environment TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at, id);
