//! `GET /api/live`: Server-Sent Events for live pages. Each event, `change`, carries the
//! shortname of the application that changed (or `*`); pages refetch what they show. The
//! grid page (`?grid=1`) also gets `grid` events: the changed row itself, rendered once
//! by the grid cache for every browser (`app::grid_cache`). The browser's
//! EventSource reconnects by itself.
//!
//! A person may hold `limits.live_streams_per_session` streams at once, across all their
//! sessions (429 beyond), and a session's streams end when it does: at sign-out at once, on expiry or removal within
//! `limits.live_session_check`, and at server shutdown.

use super::guard::{SessionUser, USER_KEY};
use super::state::ServerState;
use super::streams::Slot;
use app::auth::CurrentUser;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tower_sessions::session::Id;
use tower_sessions::{Session, SessionStore};

/// Whether the session behind a stream still exists and still holds a signed-in person
/// within the absolute lifetime, whose organisation membership is not due for its
/// periodic check (then the stream ends, and the browser's reconnect goes through the
/// guard, which checks it: someone removed from the organisation stops receiving rows). A
/// store error counts as "still valid" (the next check tries again), so a database hiccup
/// does not drop every open page.
async fn session_alive(state: &ServerState, id: &Id) -> bool {
    match state.sessions.load(id).await {
        Ok(Some(record)) => record
            .data
            .get(USER_KEY)
            .and_then(|v| serde_json::from_value::<SessionUser>(v.clone()).ok())
            .is_some_and(|u| {
                let now = app::store::now_ms();
                let refresh_ms = state.auth.access.refresh_minutes * 60_000;
                now - u.signed_in_at_ms <= state.auth.session.absolute_hours * 3_600_000
                    && (u.user.dev || now - u.checked_at_ms < refresh_ms)
            }),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not check a live stream's session");
            true
        }
    }
}

#[derive(serde::Deserialize)]
pub struct LiveQuery {
    /// `1`: this page shows the grid; send its rows' deltas too (`grid` events).
    grid: Option<String>,
}

pub async fn stream(
    State(state): State<ServerState>,
    axum::extract::Query(query): axum::extract::Query<LiveQuery>,
    Extension(user): Extension<Option<CurrentUser>>,
    session: Session,
) -> Response {
    let (Some(user), Some(id)) = (user, session.id()) else {
        return (StatusCode::UNAUTHORIZED, "sign in to follow live changes").into_response();
    };
    let Some((slot, ended)) =
        state
            .live
            .open(user.user_id, id, state.limits.live_streams_per_session)
    else {
        return super::rate_limit::too_many(
            Duration::from_secs(5),
            &format!(
                "live streams for this person (at most {} at once)",
                state.limits.live_streams_per_session
            ),
        );
    };
    let changes = state.app.store.subscribe();
    let grid = (query.grid.as_deref() == Some("1")).then(|| state.app.grid.subscribe());
    let shutdown = state.live.shutdown.subscribe();
    let mut check = tokio::time::interval(state.limits.live_session_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    struct Open {
        changes: tokio::sync::broadcast::Receiver<String>,
        grid: Option<tokio::sync::broadcast::Receiver<Arc<str>>>,
        ended: watch::Receiver<bool>,
        shutdown: watch::Receiver<bool>,
        check: tokio::time::Interval,
        state: ServerState,
        id: Id,
        _slot: Slot,
    }
    let open = Open {
        changes,
        grid,
        ended,
        shutdown,
        check,
        state,
        id,
        _slot: slot,
    };
    let events = futures::stream::unfold(open, |mut o| async move {
        loop {
            if *o.ended.borrow() || *o.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                r = o.changes.recv() => match r {
                    Ok(what) => {
                        return Some((Ok::<_, std::convert::Infallible>(Event::default().event("change").data(what)), o))
                    }
                    // Too slow to keep up: tell the page to refetch everything.
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("change").data("*")), o))
                    }
                    Err(RecvError::Closed) => return None,
                },
                r = async { match o.grid.as_mut() { Some(g) => g.recv().await, None => std::future::pending().await } } => match r {
                    Ok(delta) => {
                        return Some((Ok(Event::default().event("grid").data(&*delta)), o))
                    }
                    // Too slow to keep up: reload the whole fragment.
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("grid").data("*")), o))
                    }
                    Err(RecvError::Closed) => return None,
                },
                r = o.ended.changed() => if r.is_err() { return None },
                r = o.shutdown.changed() => if r.is_err() { return None },
                _ = o.check.tick() => {
                    if !session_alive(&o.state, &o.id).await {
                        return None;
                    }
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
