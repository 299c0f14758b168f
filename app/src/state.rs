//! What server functions find in Leptos context, put there by the server at startup.

use crate::error::AppError;
use crate::store::Store;
use leptos::prelude::*;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// GitHub Actions and the Argo servers, for Deploy and Resubmit.
    pub pipeline: std::sync::Arc<crate::pipeline::Pipeline>,
    /// Decrypts the person's GitHub token for calls made on their behalf.
    pub cipher: crate::crypto::TokenCipher,
    /// A manual deploy that hears nothing from the pipeline for this long shows as
    /// stalled, and no longer blocks another.
    pub stall_ms: i64,
    /// The demo's simulated pipeline, used instead of GitHub and Argo when set.
    pub simulator: Option<std::sync::Arc<crate::simulator::Simulator>>,
    /// The grid's rows, rendered once per change.
    pub grid: std::sync::Arc<crate::grid_cache::GridCache>,
    /// The configured alert receivers (names, kinds, routes; no URLs or secrets).
    pub alert_receivers: std::sync::Arc<Vec<crate::domain::AlertReceiverInfo>>,
    /// Who may deploy where, from `[access]`: per environment the teams and `@people`, and
    /// the admins under "every environment". Shown to those who may not.
    pub who_may_deploy: std::sync::Arc<Vec<(String, Vec<String>)>>,
    /// The gates before a deploy (`[gates.*]`, the applications' own).
    pub gates: std::sync::Arc<crate::domain::gates::GateConfig>,
}

/// The server's state, from inside a server function or a page's server-side render.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>()
        .ok_or_else(|| AppError::new(500, "server state is missing from context"))
}

/// Logs a store failure in full and gives the browser a message without internals.
/// The signed-in person's GitHub token, decrypted, for calls made as them; `None` for
/// development users, who have none.
pub async fn github_token(
    state: &AppState,
    user: &crate::auth::CurrentUser,
) -> Result<Option<String>, AppError> {
    let Some(github_id) = user.github_id else {
        return Ok(None);
    };
    match state
        .store
        .user_token_for(user.user_id, github_id)
        .await
        ?
    {
        Some(ct) => state.cipher.decrypt(&ct).map(Some).map_err(|_| {
            AppError::new(401, "your stored GitHub sign-in could not be read (the server key changed); sign out and sign in again")
        }),
        None => Ok(None),
    }
}
