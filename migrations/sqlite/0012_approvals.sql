-- Approvals: a run Release dispatched that waits for a reviewer of a GitHub environment
-- (required reviewers), as GitHub's workflow_job webhook or its pending_deployments say.
CREATE TABLE approvals (
    deployment_id BIGINT NOT NULL,
    -- The GitHub environment the run waits on (its name and GitHub's id for it).
    github_environment TEXT NOT NULL,
    environment_id BIGINT,
    run_id BIGINT NOT NULL,
    -- waiting, approved, rejected, gone (no longer waiting, decided on GitHub)
    state TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    -- Who may review, as people read it ("@alice, team release-admins"); GitHub's wait timer.
    reviewers TEXT NOT NULL,
    wait_timer_minutes BIGINT,
    decided_by TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, github_environment)
);
CREATE INDEX approvals_state ON approvals (state);

-- The polling of runs' pending deployments: GitHub's ETag, so a 304 costs no rate limit.
CREATE TABLE github_polls (
    run_id BIGINT PRIMARY KEY,
    etag TEXT,
    polled_at BIGINT NOT NULL
);
