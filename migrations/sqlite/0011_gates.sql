-- Gates before a deploy (required checks, soak time).

-- Since when Argo CD has shown the running version settled (Synced, Healthy, no
-- operation running or failed); NULL while it is not. A version's soak time in an
-- environment Argo CD watches counts from here: any interruption starts it again.
ALTER TABLE live_states ADD COLUMN settled_since BIGINT;

-- A deploy that went through a closed gate with a written reason: "checks overridden",
-- "soak overridden" (NULL: every gate was open). Shown on the grid and the app's page.
ALTER TABLE deployments ADD COLUMN gate_note TEXT;
