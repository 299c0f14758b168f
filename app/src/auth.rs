//! Who is signed in and what they may do. The server puts a `CurrentUser` into each
//! request's extensions (see the server's `http::guard`); pages and server functions read
//! it from there. Every check happens on the server: hiding a button is never the
//! protection.

pub use crate::domain::{CurrentUser, Role};

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
            Role::Deployer => user.roles.admin || !user.roles.deploy_environments.is_empty(),
            Role::Admin => user.roles.admin,
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
