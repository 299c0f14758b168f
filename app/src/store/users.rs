//! People who signed in, their roles as last read from GitHub, and their encrypted token.

use super::{now_ms, Result, Store};
use crate::auth::CurrentUser;

/// What a sign-in records about a person.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub github_id: Option<i64>,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub admin: bool,
    pub deploy_environments: Vec<String>,
    /// The GitHub token, already encrypted by the caller; `None` for development users.
    pub token_ciphertext: Option<String>,
    pub dev: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserRow {
    pub user: CurrentUser,
    pub last_sign_in_ms: i64,
    pub roles_checked_ms: i64,
}

type UserTuple = (
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    i64,
    i64,
    i64,
);

const USER_COLUMNS: &str =
    "SELECT id, login, name, avatar_url, is_admin, deploy_environments, dev, last_sign_in_at, roles_checked_at FROM users";

fn row(t: UserTuple) -> UserRow {
    UserRow {
        user: CurrentUser {
            user_id: t.0,
            login: t.1,
            name: t.2,
            avatar_url: t.3,
            admin: t.4 != 0,
            deploy_environments: t
                .5
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            dev: t.6 != 0,
        },
        last_sign_in_ms: t.7,
        roles_checked_ms: t.8,
    }
}

impl Store {
    /// Records a sign-in (creating the person on their first) and returns who they are now.
    pub async fn record_sign_in(&self, s: &SignIn) -> Result<CurrentUser> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (github_id, login, name, avatar_url, is_admin, deploy_environments, token_ciphertext, dev, last_sign_in_at, roles_checked_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9)
             ON CONFLICT (login) DO UPDATE SET github_id = excluded.github_id, name = excluded.name, avatar_url = excluded.avatar_url,
               is_admin = excluded.is_admin, deploy_environments = excluded.deploy_environments, token_ciphertext = excluded.token_ciphertext,
               dev = excluded.dev, last_sign_in_at = excluded.last_sign_in_at, roles_checked_at = excluded.roles_checked_at
             RETURNING id",
        )
        .bind(s.github_id)
        .bind(&s.login)
        .bind(s.name.clone())
        .bind(s.avatar_url.clone())
        .bind(i64::from(s.admin))
        .bind(s.deploy_environments.join(","))
        .bind(s.token_ciphertext.clone())
        .bind(i64::from(s.dev))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(CurrentUser {
            user_id: id,
            login: s.login.clone(),
            name: s.name.clone(),
            avatar_url: s.avatar_url.clone(),
            admin: s.admin,
            deploy_environments: s.deploy_environments.clone(),
            dev: s.dev,
        })
    }

    /// Stores roles read again from GitHub while a session lives.
    pub async fn update_roles(
        &self,
        user_id: i64,
        admin: bool,
        deploy_environments: &[String],
    ) -> Result<()> {
        sqlx::query("UPDATE users SET is_admin = $1, deploy_environments = $2, roles_checked_at = $3 WHERE id = $4")
            .bind(i64::from(admin))
            .bind(deploy_environments.join(","))
            .bind(now_ms())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn user(&self, user_id: i64) -> Result<Option<UserRow>> {
        Ok(
            sqlx::query_as::<_, UserTuple>(&format!("{USER_COLUMNS} WHERE id = $1"))
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?
                .map(row),
        )
    }

    /// The encrypted GitHub token of a person, for calls made on their behalf.
    pub async fn user_token_ciphertext(&self, user_id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT token_ciphertext FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    pub async fn users(&self) -> Result<Vec<UserRow>> {
        Ok(
            sqlx::query_as::<_, UserTuple>(&format!("{USER_COLUMNS} ORDER BY login"))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(row)
                .collect(),
        )
    }
}
