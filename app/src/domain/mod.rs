//! The domain: types that can only hold valid values, and the rules of the dashboard
//! (a deployment's status from its events, the flags that say an app needs attention).
//!
//! Everything here compiles for the server and for the browser, so the grid can compute
//! nothing the server did not, and the server can trust nothing the browser sent.

/// The conversions of a type that holds a parsed string: serde reads it through `String`
/// and the type's parser (so JSON is checked like any other input), writes it back as the
/// string, and `Display` prints it. `$field` is the field holding the string.
macro_rules! parsed_string {
    ($t:ty, $field:tt, $parse:expr) => {
        impl TryFrom<String> for $t {
            type Error = crate::domain::InvalidInput;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                ($parse)(&s)
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.$field
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.$field)
            }
        }
    };
}

/// Whether every character is a lowercase letter, a digit, `-` or `_`: the alphabet of
/// shortnames and environment names.
fn slug_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

mod alert;
pub mod approval;
pub mod deploy_rules;
pub mod digest;
mod environment;
mod flags;
mod freeze;
pub mod gates;
mod git_ref;
mod k8s;
pub mod outside_text;
pub mod people;
mod repo;
pub mod stats;
mod status;

pub use alert::{AlertEvent, AlertKind, AlertReceiverInfo, DeliveryRow};
pub use environment::{Environment, Environments};
pub use flags::{
    app_flags, drift_since, is_stalled, newly_needs_manual, release_app_status, same_release,
    CellState, Flag, DRIFT_GRACE_MS,
};
pub use freeze::{Authority, Freeze};
pub use git_ref::{GitRef, Sha};
pub use k8s::K8sName;
pub use people::{CurrentUser, Role, Roles};
pub use repo::{RepoName, Shortname};
pub use status::{
    github_deployment_state, status_from_events, DeploymentStatus, EventStatus, EventSummary,
    Stage, Trigger,
};

/// Why an input was refused: which field and what is wrong with it. The HTTP layer turns it
/// into a 422 with this field and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    pub field: String,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `Ok` when `ok`, else `field`'s error with `message` (made only then): the one
    /// "accept, or say why not" of the parsers whose rule is a single predicate.
    pub fn check(ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<(), Self> {
        if ok {
            Ok(())
        } else {
            Err(Self::new(field, message()))
        }
    }
}

/// Everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters, so the result is one
/// inert path segment (for links the browser renders; the server's outbound calls use
/// `pipeline::endpoint`). A lone `.` or `..` is encoded as `%2E`, which the URL standard
/// still reads as a dot segment: callers pass parsed values that cannot be one (`GitRef`
/// refuses `..` and components starting with `.`).
pub fn encode_path_segment(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod encode_tests {
    #[test]
    fn segments_are_inert() {
        assert_eq!(super::encode_path_segment("v1.2"), "v1.2");
        assert_eq!(
            super::encode_path_segment("%2e%2e/x#?"),
            "%252e%252e%2Fx%23%3F"
        );
        assert_eq!(super::encode_path_segment(".."), "%2E%2E");
    }
}
