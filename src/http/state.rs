//! What every request handler can reach, and the server's limits. Lives in `http` (not in
//! `startup`) so that `startup` depends on `http` and never the other way round.

use crate::configuration::{Access, SessionSettings};
use crate::crypto::TokenCipher;
use crate::github::GitHub;
use app::state::AppState;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;

/// The largest request body any endpoint takes. Notifications are a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything a request handler can reach. Behind one `Arc`: every middleware layer
/// extracts (clones) it for every request, and a field-by-field clone of the Leptos
/// options, two stores and the rest was 7% of the notification benchmark.
#[derive(Clone)]
pub struct ServerState(Arc<ServerStateInner>);

impl ServerState {
    pub fn new(inner: ServerStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for ServerState {
    type Target = ServerStateInner;
    fn deref(&self) -> &ServerStateInner {
        &self.0
    }
}

pub struct ServerStateInner {
    pub leptos_options: LeptosOptions,
    pub app: AppState,
    pub auth: Arc<AuthState>,
    pub token_cache: Arc<super::token_cache::TokenCache>,
    pub limits: Limits,
    /// Sign-in attempts per client address.
    pub auth_limiter: Arc<super::rate_limit::RateLimiter>,
    /// Failed bearer tokens per client address.
    pub token_limiter: Arc<super::rate_limit::RateLimiter>,
    /// Open live streams, per session.
    pub live: Arc<super::streams::LiveStreams>,
    /// The session store, to check that a live stream's session still exists.
    pub sessions: Sessions,
    /// The owner of a repo the pipeline names without one (see `Config::default_owner`).
    pub default_owner: Option<String>,
    /// `RELEASE_METRICS_TOKEN`: `/metrics` on the main address wants it as a bearer token.
    pub metrics_token: Option<String>,
    /// `RELEASE_GITHUB_WEBHOOK_SECRET`: GitHub's webhooks are taken only when it is set.
    pub github_webhook_secret: Option<String>,
}

/// Sessions in our own database table, written through the store's one write path (so a
/// sign-in never meets "database is locked"). Shared by the session layer and the live
/// streams (which check that their session still exists).
#[derive(Clone)]
pub struct Sessions(pub app::store::Store);

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

mod session_store {
    use super::Sessions;
    use tower_sessions::session::{Id, Record};
    use tower_sessions::session_store::{Error, Result};

    fn backend(e: app::store::StoreError) -> Error {
        Error::Backend(e.to_string())
    }

    fn encode(r: &Record) -> Result<(String, String, i64)> {
        let data = serde_json::to_string(r).map_err(|e| Error::Encode(e.to_string()))?;
        let expires_ms = (r.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64;
        Ok((r.id.to_string(), data, expires_ms))
    }

    #[async_trait::async_trait]
    impl tower_sessions::SessionStore for Sessions {
        async fn create(&self, record: &mut Record) -> Result<()> {
            loop {
                let (id, data, expires) = encode(record)?;
                if self
                    .0
                    .session_create(&id, &data, expires)
                    .await
                    .map_err(backend)?
                {
                    return Ok(());
                }
                record.id = Id::default();
            }
        }

        async fn save(&self, record: &Record) -> Result<()> {
            let (id, data, expires) = encode(record)?;
            self.0
                .session_save(&id, &data, expires)
                .await
                .map_err(backend)
        }

        async fn load(&self, id: &Id) -> Result<Option<Record>> {
            match self
                .0
                .session_load(&id.to_string())
                .await
                .map_err(backend)?
            {
                Some(data) => serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|e| Error::Decode(e.to_string())),
                None => Ok(None),
            }
        }

        async fn delete(&self, id: &Id) -> Result<()> {
            self.0
                .session_delete(&id.to_string())
                .await
                .map_err(backend)
        }
    }
}

/// How people sign in and what they may do.
pub struct AuthState {
    /// `None`: no GitHub OAuth app configured (development sign-in instead).
    pub github: Option<GitHub>,
    /// Encrypts people's GitHub tokens at rest, and the pending sign-in cookie.
    pub cipher: TokenCipher,
    pub access: Access,
    pub session: SessionSettings,
    /// The development sign-in: only when asked for (`--dev-sign-in`, or `--demo`), without
    /// GitHub, on a loopback address; each request is checked again (see `login`).
    pub dev_sign_in: bool,
    /// The development sign-in's key, made at startup (or `RELEASE_DEV_SIGN_IN_KEY`) and
    /// printed with the sign-in link: the form needs it, so a page that reaches the
    /// loopback address some other way (a proxy that rewrites `Host`, a browser tricked
    /// into posting) cannot sign in.
    pub dev_key: String,
    /// The public base URL (`public_url`, or `http://` + the bound address): where
    /// sign-in may send people back to, and whether cookies are Secure.
    pub public_url: url::Url,
    /// `public_url` was configured (not guessed from the bound address): `Origin` is then
    /// compared with it rather than with the request's `Host`.
    pub public_url_configured: bool,
}

impl AuthState {
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(s: &ServerState) -> Self {
        s.leptos_options.clone()
    }
}

pub use crate::configuration::Limits;
