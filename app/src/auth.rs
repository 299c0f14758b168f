//! Who is signed in and what they may do. The server puts a `CurrentUser` into each
//! request's extensions (see the server's `http::guard`); pages and server functions read
//! it from there. Every check happens on the server: hiding a button is never the
//! protection.

use serde::{Deserialize, Serialize};

/// A signed-in person as the app sees them. Roles come from GitHub (organisation and team
/// membership, refreshed while the session lives) or, in development, from the choice made
/// at the development sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub user_id: i64,
    /// GitHub's numeric id: who the person is (a login can be renamed or recycled).
    /// `None` for development users.
    pub github_id: Option<i64>,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub admin: bool,
    /// Environments this person may deploy to.
    pub deploy_environments: Vec<String>,
    /// Signed in through the development sign-in (no GitHub).
    pub dev: bool,
}

/// The broadest role, for the header: admin, deployer (somewhere) or viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Deployer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "deployer" => Some(Role::Deployer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl CurrentUser {
    pub fn role(&self) -> Role {
        if self.admin {
            Role::Admin
        } else if !self.deploy_environments.is_empty() {
            Role::Deployer
        } else {
            Role::Viewer
        }
    }

    /// Admins may deploy anywhere; others where their teams allow (the rule itself is
    /// `domain::deploy_rules::may_act_on`).
    pub fn can_deploy(&self, environment: &str) -> bool {
        crate::domain::deploy_rules::may_act_on(self, environment)
    }

    /// "deployer (integration, staging)" for the header and the admin page.
    pub fn role_label(&self) -> String {
        match self.role() {
            Role::Deployer => format!("deployer ({})", self.deploy_environments.join(", ")),
            r => r.as_str().to_string(),
        }
    }
}

#[cfg(test)]
impl CurrentUser {
    /// A person with these roles, for tests.
    pub(crate) fn for_test(admin: bool, envs: &[&str]) -> Self {
        Self {
            user_id: 1,
            github_id: None,
            login: "p".into(),
            name: None,
            avatar_url: None,
            admin,
            deploy_environments: envs.iter().map(|s| s.to_string()).collect(),
            dev: false,
        }
    }
}

#[cfg(feature = "ssr")]
mod server {
    use super::{CurrentUser, Role};
    use crate::error::AppError;
    use leptos::prelude::*;

    /// The signed-in person making this request, if any.
    pub fn current_user() -> Option<CurrentUser> {
        use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Option<CurrentUser>>().cloned())
            .flatten()
    }

    /// Anyone signed in (a member of the organisation): 401 otherwise.
    pub fn require_user() -> Result<CurrentUser, AppError> {
        current_user().ok_or_else(|| AppError::new(401, "sign in to see this"))
    }

    /// At least `role`: 401 when signed out, 403 when the role is missing.
    pub fn require_role(role: Role) -> Result<CurrentUser, AppError> {
        let user = require_user()?;
        let ok = match role {
            Role::Viewer => true,
            Role::Deployer => user.admin || !user.deploy_environments.is_empty(),
            Role::Admin => user.admin,
        };
        if ok {
            Ok(user)
        } else {
            Err(AppError::new(
                403,
                &format!(
                    "this needs the {} role; you are signed in as {}",
                    role.as_str(),
                    user.role_label()
                ),
            ))
        }
    }

    /// The right to deploy to `environment`: 401 when signed out, 403 without it.
    pub fn require_deployer(environment: &str) -> Result<CurrentUser, AppError> {
        let user = require_user()?;
        if user.can_deploy(environment) {
            Ok(user)
        } else {
            Err(AppError::new(403, &format!("you may not deploy to {environment}; ask an admin to add you to a team that may"),
            ))
        }
    }
}

#[cfg(feature = "ssr")]
pub use server::{current_user, require_deployer, require_role, require_user};

#[cfg(test)]
mod tests {
    use super::*;

    fn user(admin: bool, envs: &[&str]) -> CurrentUser {
        CurrentUser::for_test(admin, envs)
    }

    #[test]
    fn roles() {
        assert_eq!(user(false, &[]).role(), Role::Viewer);
        assert!(!user(false, &[]).can_deploy("integration"));
        let d = user(false, &["integration", "staging"]);
        assert_eq!(d.role(), Role::Deployer);
        assert!(d.can_deploy("staging") && !d.can_deploy("production"));
        assert_eq!(d.role_label(), "deployer (integration, staging)");
        assert!(user(true, &[]).can_deploy("production"));
    }
}
