//! The domain: types that can only hold valid values, and the rules of the dashboard
//! (a deployment's status from its events, the flags that say an app needs attention).
//!
//! Everything here compiles for the server and for the browser, so the grid can compute
//! nothing the server did not, and the server can trust nothing the browser sent.

mod environment;
mod flags;
mod git_ref;
mod repo;
mod status;

pub use environment::{Environment, Environments};
pub use flags::{app_flags, release_app_status, CellState, Flag};
pub use git_ref::{GitRef, Sha};
pub use repo::{RepoName, Shortname};
pub use status::{status_from_events, DeploymentStatus, EventStatus, EventSummary, Stage, Trigger};

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
}
