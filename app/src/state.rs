//! What server functions find in Leptos context, put there by the server at startup.

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
}

/// Refuses a server function call with an HTTP status and a message for the person.
pub fn refuse(status: u16, message: impl Into<String>) -> ServerFnError {
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(s) = axum::http::StatusCode::from_u16(status) {
            resp.set_status(s);
        }
    }
    ServerFnError::new(message.into())
}

/// The server's state, from inside a server function or a page's server-side render.
pub fn app_state() -> Result<AppState, ServerFnError> {
    use_context::<AppState>()
        .ok_or_else(|| ServerFnError::new("server state is missing from context"))
}

/// Logs a store failure in full and gives the browser a message without internals.
/// A busy or unreachable database is a 503 (the page says to try again); anything else
/// a 500.
pub fn internal(err: crate::store::StoreError) -> ServerFnError {
    if err.is_unavailable() {
        tracing::warn!(error = %err, "database busy or unreachable in a server function");
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.insert_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("2"),
            );
        }
        return refuse(
            503,
            "the database is busy or unreachable; try again in a moment",
        );
    }
    tracing::error!(error = %err, "store error in a server function");
    refuse(500, "the database could not be read; try again in a moment")
}

/// The signed-in person's GitHub token, decrypted, for calls made as them; `None` for
/// development users, who have none.
pub async fn github_token(
    state: &AppState,
    user: &crate::auth::CurrentUser,
) -> Result<Option<String>, ServerFnError> {
    let Some(github_id) = user.github_id else {
        return Ok(None);
    };
    match state
        .store
        .user_token_for(user.user_id, github_id)
        .await
        .map_err(internal)?
    {
        Some(ct) => state.cipher.decrypt(&ct).map(Some).map_err(|_| {
            refuse(401, "your stored GitHub sign-in could not be read (the server key changed); sign out and sign in again")
        }),
        None => Ok(None),
    }
}
