//! The live streams open at once: counted per person (a new sign-in does not buy more)
//! and per session, each with a signal that ends it (sign-out, expiry, shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tower_sessions::session::Id;

/// The open live streams: counted per person (a new sign-in does not buy more), and per
/// session with a signal that ends them.
pub struct LiveStreams {
    open: Mutex<Open>,
    pub(super) shutdown: watch::Sender<bool>,
}

#[derive(Default)]
struct Open {
    users: HashMap<i64, usize>,
    sessions: HashMap<Id, (usize, watch::Sender<bool>)>,
}

impl Default for LiveStreams {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            shutdown: watch::channel(false).0,
        }
    }
}

/// One open stream; closing it (dropping this) frees its slot.
pub struct Slot {
    streams: Arc<LiveStreams>,
    user: i64,
    session: Id,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.open.lock() {
            if let Some(n) = open.users.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    open.users.remove(&self.user);
                }
            }
            if let Some((n, _)) = open.sessions.get_mut(&self.session) {
                *n -= 1;
                if *n == 0 {
                    open.sessions.remove(&self.session);
                }
            }
        }
    }
}

impl LiveStreams {
    /// A slot for one more stream of this person's `session`, or `None` when the person
    /// holds `cap` already.
    pub fn open(
        self: &Arc<Self>,
        user: i64,
        session: Id,
        cap: usize,
    ) -> Option<(Slot, watch::Receiver<bool>)> {
        let mut open = self.open.lock().ok()?;
        let n = open.users.entry(user).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        let (count, ended) = open
            .sessions
            .entry(session)
            .or_insert_with(|| (0, watch::channel(false).0));
        *count += 1;
        let rx = ended.subscribe();
        Some((
            Slot {
                streams: self.clone(),
                user,
                session,
            },
            rx,
        ))
    }

    /// Ends every stream of a session (sign-out).
    pub fn end_session(&self, session: Id) {
        if let Ok(open) = self.open.lock() {
            if let Some((_, ended)) = open.sessions.get(&session) {
                ended.send_replace(true);
            }
        }
    }

    /// Ends every stream (server shutdown), so a graceful shutdown need not wait for them.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Streams open now, for all sessions.
    pub fn open_count(&self) -> usize {
        self.open
            .lock()
            .map(|o| o.users.values().sum())
            .unwrap_or(0)
    }
}
