//! Pipeline API tokens: `Authorization: Bearer TOKEN`. The token is hashed and looked up;
//! only hashes are stored (see `release token create`).

use super::error::ApiError;
use super::state::ServerState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

/// A request that carried a valid, unrevoked token; holds the token's name.
pub struct ApiToken(pub String);

impl FromRequestParts<ServerState> for ApiToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        // Only failures count, per address: a valid token is never limited, so someone
        // sending garbage from behind the same proxy cannot lock the pipeline out. Past the
        // limit a failure is a 429 with Retry-After instead of a 401.
        let ip = super::rate_limit::peer_ip(&parts.extensions);
        let refused = |why: &'static str| match state.token_limiter.take(ip) {
            Ok(()) if why == UNKNOWN_TOKEN => ApiError::InvalidToken(why),
            Ok(()) => ApiError::Unauthorized(why),
            Err(wait) => {
                tracing::warn!(%ip, "failed API token rate limit reached");
                ApiError::TooMany(wait)
            }
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                refused("missing Authorization header; send Authorization: Bearer TOKEN")
            })?;
        let value = header
            .to_str()
            .map_err(|_| refused("the Authorization header is not valid text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refused("the Authorization header must be \"Bearer TOKEN\""))?;
        let hash = hash_token(token);
        if let Some(name) = state.token_cache.get(&hash) {
            return Ok(ApiToken(name));
        }
        match state.app.store.token_name(&hash).await? {
            Some(name) => {
                state.token_cache.put(hash, name.clone());
                Ok(ApiToken(name))
            }
            None => Err(refused(UNKNOWN_TOKEN)),
        }
    }
}

const UNKNOWN_TOKEN: &str = "unknown or revoked API token";

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token: 256 random bits, URL-safe, with a prefix that makes it easy to spot in a
/// leaked file.
pub fn generate_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rel_{}", hex::encode(bytes))
}
