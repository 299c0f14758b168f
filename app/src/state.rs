//! What server functions find in Leptos context, put there by the server at startup.

use crate::store::Store;
use leptos::prelude::*;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

/// The server's state, from inside a server function or a page's server-side render.
pub fn app_state() -> Result<AppState, ServerFnError> {
    use_context::<AppState>()
        .ok_or_else(|| ServerFnError::new("server state is missing from context"))
}

/// Logs a store failure in full and gives the browser a message without internals.
pub fn internal(err: crate::store::StoreError) -> ServerFnError {
    tracing::error!(error = %err, "store error in a server function");
    ServerFnError::new("the database could not be read; try again in a moment")
}
