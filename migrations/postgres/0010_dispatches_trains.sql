-- One durable path for every action (issue 18). A deploy's intent is written, with its
-- deployment, its in-flight slot and its audit entry, in one transaction before GitHub is
-- called; the call's outcome is written in a task the request does not own. A row still
-- 'pending' after its task should have ended (the process died) is reconciled: the run it
-- started is looked for on GitHub and linked, or the deployment says "dispatch not
-- confirmed" and the slot is released.
CREATE TABLE dispatches (
    id BIGSERIAL PRIMARY KEY,
    -- 'deploy' (GitHub's workflow dispatch) or 'resubmit' (Argo's resubmit).
    kind TEXT NOT NULL,
    deployment_id BIGINT NOT NULL,
    application_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    actor TEXT NOT NULL,
    -- Whose stored GitHub token looks for the run when the outcome was lost.
    user_id BIGINT,
    github_id BIGINT,
    -- The deployment was made by this intent (not an existing one it attached to), and
    -- what was current before it (put back if GitHub refuses).
    created_deployment BIGINT NOT NULL,
    previous_deployment_id BIGINT,
    -- pending, dispatched, failed, unconfirmed
    state TEXT NOT NULL,
    run_url TEXT,
    error TEXT,
    train_id BIGINT,
    claimed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX dispatches_state ON dispatches (state, id);
CREATE INDEX dispatches_deployment ON dispatches (deployment_id);
CREATE INDEX dispatches_application ON dispatches (application_id, created_at);
-- One run is linked to one dispatch at most (NULLs are distinct).
CREATE UNIQUE INDEX dispatches_run ON dispatches (run_url);

-- What the deployment's history says of its dispatch: NULL (nothing to say),
-- 'dispatching', 'not confirmed' or 'refused'.
ALTER TABLE deployments ADD COLUMN dispatch_state TEXT;

-- A release train as a job: the row and its items are written before any dispatch; the
-- dispatches run in the background; the train's one audit entry is written with its end.
CREATE TABLE trains (
    id BIGSERIAL PRIMARY KEY,
    environment TEXT NOT NULL,
    actor TEXT NOT NULL,
    -- running, done
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- Touched at every item: a running train without it for a while was left by a
    -- server that stopped.
    heartbeat_at BIGINT NOT NULL
);
CREATE TABLE train_items (
    train_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    application TEXT NOT NULL,
    -- pending, dispatching, dispatched, skipped, failed
    outcome TEXT NOT NULL,
    message TEXT NOT NULL,
    link TEXT,
    PRIMARY KEY (train_id, position)
);

-- A deployer's freeze holds only the environments that person may deploy to
-- (comma-separated, in pipeline order); NULL: every environment (an admin's, or a
-- deployer to every environment). Anyone who may deploy to all of them may lift it.
ALTER TABLE freezes ADD COLUMN environments TEXT;

-- What Argo CD's images say when no version can be read from them ("rolling out: v300,
-- v301", "tag latest is not a version", "runs an image by digest only").
ALTER TABLE live_states ADD COLUMN note TEXT;
