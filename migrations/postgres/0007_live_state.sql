-- What really runs: each environment's Argo CD, as the observer last saw it, per
-- application and environment.
CREATE TABLE live_states (
    application_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    -- The running version (the image tag as the pipeline names versions); NULL when the
    -- application's image was not among what Argo CD reports.
    version TEXT,
    health TEXT NOT NULL,
    sync_status TEXT NOT NULL,
    operation_phase TEXT,
    argocd_app TEXT NOT NULL,
    -- When Argo CD last told us about it, and since when this version runs.
    observed_at BIGINT NOT NULL,
    version_since BIGINT NOT NULL,
    -- Argo CD unreachable or refusing since then (NULL: known).
    unknown_since BIGINT,
    unknown_reason TEXT,
    PRIMARY KEY (application_id, environment)
);
