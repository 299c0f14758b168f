//! Every integration test in one binary (one link, one process): each module starts the
//! real server on a random port with a fresh database, with fake GitHub and Argo servers
//! where it needs them. `TEST_LOG=1` shows the servers' logs.

mod common;

mod alerts;
mod approvals;
mod argocd;
mod auth;
mod deploys;
mod digest;
mod durability;
mod faults;
mod fuzz;
mod gates;
mod github_deployments;
mod live;
mod operations;
mod pages;
mod pipeline_api;
mod promotion;
mod rollback;
mod security;
mod stats;
mod storage;
