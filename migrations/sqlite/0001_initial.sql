-- Times are milliseconds since the Unix epoch (BIGINT), so the same queries run on
-- SQLite and PostgreSQL through sqlx::Any.
CREATE TABLE applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    shortname TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    repo TEXT NOT NULL,
    default_branch TEXT NOT NULL DEFAULT 'main',
    workflow TEXT NOT NULL DEFAULT 'deploy.yml',
    team TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    -- comma-separated environments that need a person (continuous deployment off)
    manual_environments TEXT NOT NULL DEFAULT '',
    declared BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX applications_repo ON applications (repo);

CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    application_id BIGINT NOT NULL REFERENCES applications (id),
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    sha TEXT,
    trigger_kind TEXT NOT NULL,
    deployed_by TEXT,
    base_status TEXT NOT NULL,
    status TEXT NOT NULL,
    failed_stage TEXT,
    workflow_environment TEXT,
    workflow_namespace TEXT,
    workflow_name TEXT,
    workflow_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deployments_app_env_version ON deployments (application_id, environment, version, id);
CREATE INDEX deployments_app_env_id ON deployments (application_id, environment, id);
CREATE INDEX deployments_created ON deployments (created_at, id);

-- The dashboard reads this: one row per application and environment, so the grid's cost
-- is O(apps x environments) whatever the length of history.
CREATE TABLE current_deployments (
    application_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    deployment_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, environment)
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id BIGINT NOT NULL REFERENCES deployments (id),
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    workflow_environment TEXT,
    workflow_namespace TEXT,
    workflow_name TEXT,
    workflow_url TEXT,
    at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX events_deployment ON events (deployment_id, id);

-- Idempotency of POST /api/v1/events: the first answer to a delivery id, replayed.
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
