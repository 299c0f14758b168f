//! Freezes: what one holds (an application or the whole site, deploys or a rollback's
//! promotion, the environments its setter may deploy to) and the authority it carries.

use super::CurrentUser;
use serde::{Deserialize, Serialize};

/// A deploy freeze in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freeze {
    pub id: i64,
    /// `None`: the whole site.
    pub application: Option<String>,
    pub reason: String,
    pub frozen_by: String,
    pub created_at_ms: i64,
    /// Who may lift it: an admin's freeze needs an admin.
    pub authority: Authority,
    /// Set by a rollback: only promotion *from* this environment is frozen (deploys are
    /// not). None: an ordinary freeze of deploys.
    pub from_environment: Option<String>,
    /// The environments it holds (a deployer's freeze: those they may deploy to);
    /// `None`: every environment.
    pub environments: Option<Vec<String>>,
}

impl Freeze {
    /// Whether this freeze holds `environment` (deploys there, promotion into it).
    pub fn holds(&self, environment: &str) -> bool {
        self.environments
            .as_ref()
            .is_none_or(|envs| envs.iter().any(|e| e == environment))
    }

    /// What is frozen, as a banner says it.
    pub fn headline(&self) -> String {
        match (
            &self.application,
            &self.from_environment,
            &self.environments,
        ) {
            (Some(a), Some(e), None) => {
                format!("Promotion of {a} into and out of {e} is frozen (rollback)")
            }
            (Some(a), Some(_), Some(held)) => format!(
                "Promotion of {a} into {} is frozen (rollback)",
                held.join(" and ")
            ),
            (Some(a), None, Some(held)) => {
                format!("Deploys of {a} to {} are frozen", held.join(" and "))
            }
            (Some(a), None, None) => format!("Deploys to {a} are frozen"),
            (None, _, _) => "Deploys are frozen site-wide".to_string(),
        }
    }

    /// "to integration" or "to integration and staging" when it holds only some.
    pub fn scope_words(&self) -> Option<String> {
        self.environments
            .as_ref()
            .map(|envs| format!("to {}", envs.join(" and ")))
    }
}

/// How much authority a freeze carries: only someone with at least as much may lift it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    Deployer,
    Admin,
}

impl Authority {
    /// As stored with a freeze.
    pub fn as_str(self) -> &'static str {
        match self {
            Authority::Admin => "admin",
            Authority::Deployer => "deployer",
        }
    }

    /// From the stored word: anything but `deployer` is taken as the stricter `admin`.
    pub fn from_stored(s: &str) -> Self {
        if s == "deployer" {
            Authority::Deployer
        } else {
            Authority::Admin
        }
    }

    pub fn of(user: &CurrentUser) -> Option<Self> {
        if user.roles.admin {
            Some(Authority::Admin)
        } else if !user.roles.deploy_environments.is_empty() {
            Some(Authority::Deployer)
        } else {
            None
        }
    }
}
