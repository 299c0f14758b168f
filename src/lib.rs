//! The Release server: where requests enter (`http`, and the Leptos pages from the `app`
//! crate), how the server is put together (`startup`), configuration, demo data.

pub mod alerts;
pub mod argocd;
pub mod configuration;
pub use app::crypto;
pub mod demo;
pub mod digest;
pub mod github;
pub mod github_deployments;
pub mod http;
pub mod outbound;
pub mod startup;
pub mod stats;
pub mod telemetry;
