//! One error type for the API. Each variant has one status code; the body is always JSON:
//! `{"error": "message", "field": "name"}` (`field` only when one input is at fault).

use app::domain::InvalidInput;
use app::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no token, or a malformed Authorization header.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401: a token we do not know, or one that was revoked (`WWW-Authenticate: Bearer
    /// error="invalid_token"`, RFC 6750, as the Release app answers).
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 400: the body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 400: a form body (`application/x-www-form-urlencoded`) that cannot be decoded.
    #[error("malformed form body: {0}")]
    MalformedForm(String),
    /// 413: larger than `BODY_LIMIT`.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 415: not sent as JSON.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// 422: well-formed JSON with a value we cannot accept.
    #[error("{0}")]
    Invalid(InvalidInput),
    /// 422: the JSON does not have the shape we need (missing field, wrong type).
    #[error("{0}")]
    Shape(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 429: too many failed tokens from this address; retry after the duration.
    #[error("too many failed API tokens from this address; try again in {} s", .0.as_secs().max(1))]
    TooMany(std::time::Duration),
    /// 429: too many expensive reads at once; retry in a moment.
    #[error("{0}")]
    Busy(String),
    /// 503: the database is busy or unreachable; retry after a moment.
    #[error("the database is busy or unreachable; retry in a moment")]
    Unavailable(#[source] StoreError),
    /// 500 or 503: our fault. The detail goes to the log, never to the caller.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::Invalid(e)
    }
}

/// For `map_err` where a value was parsed under another name: the same error, said of
/// `field` (`deployment.environment`, not `environment`).
pub fn said_of(field: &str) -> impl FnOnce(InvalidInput) -> InvalidInput + '_ {
    move |mut e| {
        e.field = field.to_owned();
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Busy(m) => ApiError::Busy(m),
            other if other.is_unavailable() => ApiError::Unavailable(other),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::MalformedJson(_) | ApiError::MalformedForm(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) | ApiError::Shape(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooMany(_) | ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Invalid(e) => json!({ "error": e.message, "field": e.field }),
            ApiError::Unavailable(err) => {
                tracing::warn!(error = %err, "database busy or unreachable: answered 503");
                json!({ "error": self.to_string() })
            }
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "internal error in the API");
                json!({ "error": "internal error; the server log has the details" })
            }
            other => json!({ "error": other.to_string() }),
        };
        let retry_after = match &self {
            ApiError::TooMany(wait) => Some(wait.as_secs().max(1)),
            ApiError::Busy(_) => Some(2),
            ApiError::Unavailable(_) => Some(2),
            _ => None,
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if matches!(self, ApiError::InvalidToken(_)) {
                "Bearer error=\"invalid_token\""
            } else {
                "Bearer"
            };
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        resp
    }
}
