-- Deploys told back to GitHub's Deployments API (issue 22): a durable outbox. A row is
-- written (or made due again) in the transaction of the deployment's change; a worker
-- claims due rows with a lease, creates the GitHub deployment once and posts a status
-- each time the deployment's state moves.
-- The environments whose deployments Release reports (one writer per environment: not
-- those whose workflow job already creates GitHub deployments). Written at startup.
CREATE TABLE github_report_environments (
    environment TEXT PRIMARY KEY
);
CREATE TABLE github_reports (
    deployment_id BIGINT PRIMARY KEY,
    -- GitHub's id of the deployment it created, once created.
    github_id BIGINT,
    -- The last status state GitHub took (queued, in_progress, success, failure, error).
    reported_state TEXT,
    -- When to look at it next; NULL: nothing to do.
    due_at BIGINT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Counts the changes marked: a send that began before a change does not clear it.
    generation BIGINT NOT NULL DEFAULT 0,
    -- Why it stopped for good (GitHub's 202 auto-merge, a 409, a 422, gave up): for admins.
    outcome TEXT,
    last_error TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX github_reports_due ON github_reports (due_at);
CREATE INDEX github_reports_updated ON github_reports (updated_at);

-- The daily digest: one row per local day, inserted by the server that sends it, so two
-- servers never send one day's digest twice.
CREATE TABLE digests (
    day TEXT PRIMARY KEY,
    sent_at BIGINT NOT NULL,
    messages BIGINT NOT NULL
);
