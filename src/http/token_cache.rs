//! The API tokens recently found valid (by hash, for a few seconds): a busy pipeline does
//! not cost a database read per notification.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a token found valid is trusted without asking the database again. A token
/// revoked with `release token revoke` stops working within this time.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Valid tokens recently seen (by hash), so a busy pipeline does not cost a database read
/// per notification. Only successes are kept: a bad token is always checked.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, (String, Instant)>>);

impl TokenCache {
    pub fn get(&self, hash: &str) -> Option<String> {
        let map = self.0.lock().ok()?;
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(name, _)| name.clone())
    }

    pub fn put(&self, hash: String, name: String) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
            }
            map.insert(hash, (name, Instant::now()));
        }
    }
}
