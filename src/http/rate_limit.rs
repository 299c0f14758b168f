//! Per-client rate limits (a token bucket per IP address) for sign-in and for failed bearer
//! tokens. Over the limit: 429 with `Retry-After`.
//!
//! The address is the TCP peer's. Behind a reverse proxy every request shares the proxy's
//! address, so these limits then apply to everyone together (README says so).

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket per IP: `burst` requests at once, refilled at `per_minute`.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            burst: f64::from(per_minute),
            per_second: f64::from(per_minute) / 60.0,
            buckets: Mutex::default(),
        }
    }

    fn refill(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        (tokens + now.duration_since(since).as_secs_f64() * self.per_second).min(self.burst)
    }

    /// Takes one token: `Err(wait)` when none is left.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() > 50_000 {
            // Forget addresses whose bucket is full again.
            map.retain(|_, (t, at)| self.refill(*t, *at, now) < self.burst);
        }
        let (tokens, at) = map.entry(ip).or_insert((self.burst, now));
        let available = self.refill(*tokens, *at, now);
        if available >= 1.0 {
            *tokens = available - 1.0;
            *at = now;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - available) / self.per_second))
        }
    }
}

/// 429 with `Retry-After` (whole seconds, at least 1) and a JSON body.
pub fn too_many(wait: Duration, what: &str) -> Response {
    let secs = wait.as_secs().max(1);
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(serde_json::json!({
            "error": format!("too many {what} from this address; try again in {secs} s")
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The client's address, as the accept loop recorded it.
/// IPv6 addresses are keyed by their /64 (one host usually holds a whole /64).
pub fn peer_ip(req_extensions: &axum::http::Extensions) -> IpAddr {
    match req_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        Some(ip) => ip,
        None => IpAddr::from([0, 0, 0, 0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_with_a_wait() {
        let l = RateLimiter::new(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(l.take(ip).is_ok());
        }
        let wait = l.take(ip).unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another address is not affected.
        assert!(l.take([10, 0, 0, 2].into()).is_ok());
    }
}
