//! A signed-in person as every rule sees them: who, and which environments they may act
//! on. Plain data (the server finds it in the session, `auth` puts it in context), so the
//! rules in `deploy_rules` depend on nothing above the domain.

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
    #[serde(flatten)]
    pub roles: Roles,
    /// Signed in through the development sign-in (no GitHub).
    pub dev: bool,
}

/// What a person may do, decided together: from GitHub's organisation and teams at the
/// sign-in and again while the session lives, or from the development sign-in's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub admin: bool,
    /// Environments this person may deploy to.
    pub deploy_environments: Vec<String>,
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
        if self.roles.admin {
            Role::Admin
        } else if !self.roles.deploy_environments.is_empty() {
            Role::Deployer
        } else {
            Role::Viewer
        }
    }

    /// May this person deploy to (or otherwise act on) `environment`? Admins everywhere;
    /// others where their teams allow. Every rule asks this (`deploy_rules::may_act_on`).
    pub fn can_deploy(&self, environment: &str) -> bool {
        self.roles.admin
            || self
                .roles
                .deploy_environments
                .iter()
                .any(|e| e == environment)
    }

    /// "deployer (integration, staging)" for the header and the admin page.
    pub fn role_label(&self) -> String {
        match self.role() {
            Role::Deployer => format!("deployer ({})", self.roles.deploy_environments.join(", ")),
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
            roles: Roles {
                admin,
                deploy_environments: envs.iter().map(|s| s.to_string()).collect(),
            },
            dev: false,
        }
    }
}

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
