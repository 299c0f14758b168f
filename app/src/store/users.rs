//! People who signed in, their roles as last read from GitHub, and their encrypted token.

use super::{now_ms, Result, Store, StoreError};
use crate::auth::CurrentUser;
use crate::domain::Roles;

/// What a sign-in records about a person.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub github_id: Option<i64>,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub roles: Roles,
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
    Option<i64>,
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
    "SELECT id, github_id, login, name, avatar_url, is_admin, deploy_environments, dev, last_sign_in_at, roles_checked_at FROM users";

fn row(t: UserTuple) -> UserRow {
    UserRow {
        user: CurrentUser {
            user_id: t.0,
            github_id: t.1,
            login: t.2,
            name: t.3,
            avatar_url: t.4,
            roles: Roles {
                admin: t.5 != 0,
                deploy_environments: t
                    .6
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            dev: t.7 != 0,
        },
        last_sign_in_ms: t.8,
        roles_checked_ms: t.9,
    }
}

impl Store {
    /// Records a sign-in (creating the person on their first) and returns who they are now.
    ///
    /// GitHub people are keyed by GitHub's numeric id, not their login: a renamed person
    /// keeps their row (the login is updated), and a login that GitHub gave to someone new
    /// never inherits the previous holder's row or stored token (that row is renamed
    /// `login~id` and its token dropped). Development people (no GitHub id) are keyed by
    /// login.
    pub async fn record_sign_in(&self, s: &SignIn) -> Result<CurrentUser> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        if let Some(gid) = s.github_id {
            // Someone else holds this login now (a recycled login): move them aside.
            sqlx::query(
                "UPDATE users SET login = login || '~' || CAST(id AS TEXT), token_ciphertext = NULL
                 WHERE login = $1 AND (github_id IS NULL OR github_id <> $2)",
            )
            .bind(&s.login)
            .bind(gid)
            .execute(&mut *tx)
            .await?;
        }
        // One upsert, so two sign-ins of the same person at once cannot both insert (on
        // PostgreSQL they did: a unique violation). GitHub people are matched by id;
        // development people by login, and never onto a GitHub person's row.
        let conflict = if s.github_id.is_some() {
            "ON CONFLICT (github_id) DO UPDATE SET"
        } else {
            "ON CONFLICT (login) DO UPDATE SET"
        };
        let only_dev = if s.github_id.is_some() {
            ""
        } else {
            " WHERE users.github_id IS NULL"
        };
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO users (github_id, login, name, avatar_url, is_admin, deploy_environments, token_ciphertext, dev, last_sign_in_at, roles_checked_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9)
             {conflict} login = excluded.login, name = excluded.name, avatar_url = excluded.avatar_url,
               is_admin = excluded.is_admin, deploy_environments = excluded.deploy_environments,
               token_ciphertext = excluded.token_ciphertext, dev = excluded.dev,
               last_sign_in_at = excluded.last_sign_in_at, roles_checked_at = excluded.roles_checked_at{only_dev}
             RETURNING id"
        ))
        .bind(s.github_id)
        .bind(&s.login)
        .bind(s.name.clone())
        .bind(s.avatar_url.clone())
        .bind(i64::from(s.roles.admin))
        .bind(s.roles.deploy_environments.join(","))
        .bind(s.token_ciphertext.clone())
        .bind(i64::from(s.dev))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::Conflict(format!(
                "the login {:?} belongs to a GitHub account",
                s.login
            )));
        };
        tx.commit().await?;
        Ok(CurrentUser {
            user_id: id,
            github_id: s.github_id,
            login: s.login.clone(),
            name: s.name.clone(),
            avatar_url: s.avatar_url.clone(),
            roles: s.roles.clone(),
            dev: s.dev,
        })
    }

    /// The stored token of a person, only if the row still belongs to that GitHub id (a
    /// session never reads a token that was stored for someone else).
    pub async fn user_token_for(&self, user_id: i64, github_id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT token_ciphertext FROM users WHERE id = $1 AND github_id = $2",
        )
        .bind(user_id)
        .bind(github_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Updates a person's login after GitHub reported a rename. An older row still holding
    /// that login (someone who gave it up) is moved aside first, as at sign-in.
    pub async fn update_login(&self, user_id: i64, login: &str) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE users SET login = login || '~' || CAST(id AS TEXT), token_ciphertext = NULL WHERE login = $1 AND id <> $2",
        )
        .bind(login)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET login = $1 WHERE id = $2")
            .bind(login)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores roles read again from GitHub while a session lives.
    pub async fn update_roles(&self, user_id: i64, roles: &Roles) -> Result<()> {
        self.write_one(
            "UPDATE users SET is_admin = $1, deploy_environments = $2, roles_checked_at = $3 WHERE id = $4",
            (
                i64::from(roles.admin),
                roles.deploy_environments.join(","),
                now_ms(),
                user_id,
            ),
        )
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
