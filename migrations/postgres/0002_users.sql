-- People who signed in. Their GitHub token is encrypted (XChaCha20-Poly1305, key from
-- RELEASE_SECRET_KEY) and never leaves the server.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    github_id BIGINT UNIQUE,
    login TEXT NOT NULL UNIQUE,
    name TEXT,
    avatar_url TEXT,
    is_admin BIGINT NOT NULL DEFAULT 0,
    deploy_environments TEXT NOT NULL DEFAULT '',
    token_ciphertext TEXT,
    dev BIGINT NOT NULL DEFAULT 0,
    last_sign_in_at BIGINT NOT NULL,
    roles_checked_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
