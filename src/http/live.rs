//! `GET /api/live`: Server-Sent Events for live pages. Each event, `change`, carries the
//! shortname of the application that changed (or `*`); pages refetch what they show. The
//! browser's EventSource reconnects by itself.

use crate::startup::ServerState;
use app::auth::CurrentUser;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub async fn stream(
    State(state): State<ServerState>,
    Extension(user): Extension<Option<CurrentUser>>,
) -> Response {
    if user.is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in to follow live changes").into_response();
    }
    let rx = state.app.store.subscribe();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(what) => {
                    return Some((
                        Ok::<_, std::convert::Infallible>(
                            Event::default().event("change").data(what),
                        ),
                        rx,
                    ))
                }
                // Too slow to keep up: tell the page to refetch everything.
                Err(RecvError::Lagged(_)) => {
                    return Some((Ok(Event::default().event("change").data("*")), rx))
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
