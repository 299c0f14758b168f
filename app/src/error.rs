//! The one error type of the server functions: an HTTP status and a message for the
//! person. The cause, when there is one worth keeping (a database error), goes to the log
//! where the error is made, never to the browser.
//!
//! A plain value: making one changes nothing (a train's item refused with 409 does not
//! make the train's answer a 409). Its status is given to the response in one place per
//! kind of answer: for a server function, the server's `http::limits::server_fn_status`
//! middleware (from the JSON, `{"status": 403, "message": "..."}`); for a page rendered on
//! the server, `pages::ErrorView`, which shows it.

use crate::domain::deploy_rules::Refusal;
use crate::domain::InvalidInput;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub status: u16,
    pub message: String,
}

impl AppError {
    /// An error with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A database error: 503 with `Retry-After` when the database is busy or unreachable,
    /// 500 otherwise; the cause is logged here.
    #[cfg(feature = "ssr")]
    pub fn store(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        use leptos::prelude::use_context;
        match err {
            StoreError::NotFound(m) => return Self::new(404, m),
            StoreError::Conflict(m) => return Self::new(409, m),
            StoreError::Busy(m) => {
                if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
                    resp.insert_header(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from_static("2"),
                    );
                }
                return Self::new(429, m);
            }
            _ => {}
        }
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database busy or unreachable in a server function");
            if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
                resp.insert_header(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("2"),
                );
            }
            return Self::new(
                503,
                "the database is busy or unreachable; try again in a moment",
            );
        }
        tracing::error!(error = %err, "store error in a server function");
        Self::new(500, "the database could not be read; try again in a moment")
    }
}

/// Gives the page being rendered on the server the status of the error it shows.
#[cfg(feature = "ssr")]
pub fn set_page_status(status: u16) {
    use leptos::prelude::use_context;
    if let (Some(resp), Ok(s)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(status),
    ) {
        resp.set_status(s);
    }
}

/// A store error becomes the person's message (see `AppError::store`), so `?` works.
#[cfg(feature = "ssr")]
impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::store(e)
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        Self::new(r.status(), r.to_string())
    }
}

impl From<InvalidInput> for AppError {
    fn from(e: InvalidInput) -> Self {
        Self::new(422, e.to_string())
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// Leptos's own failures: arguments that cannot be read are the caller's (422); a
    /// request that never reached the server, or an answer the browser could not read, is
    /// a gateway problem (502); anything else is ours (500).
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let status = match &value {
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::MissingArg(_) => 422,
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => 502,
            _ => 500,
        };
        Self {
            status,
            message: value.to_string(),
        }
    }
}
