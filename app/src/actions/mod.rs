//! What people do to deployments: deploy, promote, roll back, run a train, resubmit,
//! freeze and lift. Each action takes parsed input, checks `domain::deploy_rules`, and
//! goes through one durable path:
//!
//! 1. **Intent**, in one transaction before GitHub or Argo is called: the deployment
//!    (requested), the in-flight slot pointing at it, the audit entry, and a rollback's
//!    freeze (`store::Store::begin_deploy`).
//! 2. **Effect and outcome**, in a task the request does not own (`dispatch`): the call,
//!    then its outcome (run link; refusal with the slot released and its alert; or "not
//!    confirmed") in one transaction. A client that leaves or a request that times out
//!    cancels nothing: the request only waits for the task's answer, for a while.
//! 3. **Reconciling** (`dispatch::reconcile`): an intent whose outcome was never written
//!    (the process died between the call and the record) is found, and the run it started
//!    looked for on GitHub and linked, or the deployment says "dispatch not confirmed" and
//!    the slot is released.
//!
//! Server functions (`pages::*`) and API handlers only parse and call these.

use serde::{Deserialize, Serialize};

server_only!(
    approvals, deploy, digest, dispatch, freeze, gates, promote, reconcile, resubmit, rollback,
    train,
);

/// What an action answers the person: a sentence and, when there is one, the run's link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDone {
    pub message: String,
    pub link: Option<String>,
}

/// What happened to one app of a train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainItem {
    pub application: String,
    /// `pending`, `dispatching`, `dispatched`, `skipped` (frozen, in flight, nothing to
    /// promote) or `failed`.
    pub outcome: String,
    pub message: String,
    pub link: Option<String>,
}

/// A release train: its items as they stand, and whether it has ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    pub id: i64,
    pub environment: String,
    pub finished: bool,
    pub items: Vec<TrainItem>,
}

/// One action's audit entries: who, what, on which app and environment. An action's own
/// entry is written in the action's transaction (`entry`); a refusal's alone (`record`).
#[cfg(feature = "ssr")]
pub struct Audit<'a> {
    store: &'a crate::store::Store,
    actor: &'a str,
    action: &'static str,
    application: Option<&'a str>,
    environment: Option<&'a str>,
}

#[cfg(feature = "ssr")]
impl<'a> Audit<'a> {
    /// `actor`'s `action`, on the site until `on` names an application and environment.
    pub fn new(store: &'a crate::store::Store, actor: &'a str, action: &'static str) -> Self {
        Self {
            store,
            actor,
            action,
            application: None,
            environment: None,
        }
    }

    /// On `application` (none: the site) and `environment` (none: every one).
    pub fn on(self, application: Option<&'a str>, environment: Option<&'a str>) -> Self {
        Self {
            application,
            environment,
            ..self
        }
    }

    /// The entry for this action with `outcome` and `detail`, to write with the action.
    pub fn entry<'b>(&'b self, outcome: &'b str, detail: &'b str) -> crate::store::NewAudit<'b> {
        crate::store::NewAudit {
            actor: self.actor,
            action: self.action,
            application: self.application,
            environment: self.environment,
            outcome,
            detail,
        }
    }

    /// An entry with no action of its own (a refusal): a failure to write it is logged.
    pub async fn record(&self, outcome: &str, detail: &str) {
        if let Err(e) = self.store.audit(&self.entry(outcome, detail)).await {
            tracing::error!(error = %e, action = self.action, "could not write the audit log");
        }
    }
}
