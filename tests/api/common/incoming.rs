//! What the fake servers take in of every request they record.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{request::Parts, HeaderMap, Method, Uri};
use serde_json::Value;
use std::collections::HashMap;

/// A request as a fake server received it: its method, its URI as it arrived (path and
/// query, nothing decoded) and its headers. An extractor, so a handler takes all three
/// as one argument.
pub struct Incoming {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Incoming {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Incoming {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

/// A request's body as JSON, `Null` when it is empty or not JSON (the fakes record what
/// arrived, and answer it as the real servers would, rather than refuse it).
pub struct BodyJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for BodyJson {
    type Rejection = axum::extract::rejection::StringRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let text = String::from_request(req, state).await?;
        Ok(BodyJson(serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

impl Incoming {
    /// Header `name` as text, when it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header, as recorded: lowercase names, values as text ("" when not text).
    pub fn header_map(&self) -> HashMap<String, String> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect()
    }
}
