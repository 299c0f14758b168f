//! People who signed in, their roles as last read from GitHub, and their encrypted token.

use super::{now_ms, sql, CommaList, Result, Store, StoreError};
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

const USER_COLUMNS: &str =
    "SELECT id, github_id, login, name, avatar_url, is_admin, deploy_environments, dev, last_sign_in_at, roles_checked_at FROM users";

/// A row of `USER_COLUMNS`, read by column name.
impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for UserRow {
    fn from_row(r: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            user: CurrentUser {
                user_id: r.try_get("id")?,
                github_id: r.try_get("github_id")?,
                login: r.try_get("login")?,
                name: r.try_get("name")?,
                avatar_url: r.try_get("avatar_url")?,
                roles: Roles {
                    admin: r.try_get::<i64, _>("is_admin")? != 0,
                    deploy_environments: r.try_get::<CommaList, _>("deploy_environments")?.into(),
                },
                dev: r.try_get::<i64, _>("dev")? != 0,
            },
            last_sign_in_ms: r.try_get("last_sign_in_at")?,
            roles_checked_ms: r.try_get("roles_checked_at")?,
        })
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
            sql::exec(
                &mut *tx,
                "UPDATE users SET login = login || '~' || CAST(id AS TEXT), token_ciphertext = NULL
                 WHERE login = $1 AND (github_id IS NULL OR github_id <> $2)",
                (&s.login, gid),
            )
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
        let upsert = format!(
            "INSERT INTO users (github_id, login, name, avatar_url, is_admin, deploy_environments, token_ciphertext, dev, last_sign_in_at, roles_checked_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9)
             {conflict} login = excluded.login, name = excluded.name, avatar_url = excluded.avatar_url,
               is_admin = excluded.is_admin, deploy_environments = excluded.deploy_environments,
               token_ciphertext = excluded.token_ciphertext, dev = excluded.dev,
               last_sign_in_at = excluded.last_sign_in_at, roles_checked_at = excluded.roles_checked_at{only_dev}
             RETURNING id"
        );
        let id: Option<i64> = sql::scalar_optional(
            &mut *tx,
            &upsert,
            (
                s.github_id,
                &s.login,
                s.name.clone(),
                s.avatar_url.clone(),
                i64::from(s.roles.admin),
                s.roles.deploy_environments.join(","),
                s.token_ciphertext.clone(),
                i64::from(s.dev),
                now,
            ),
        )
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
        let token: Option<Option<String>> = sql::scalar_optional(
            &self.pool,
            "SELECT token_ciphertext FROM users WHERE id = $1 AND github_id = $2",
            (user_id, github_id),
        )
        .await?;
        Ok(token.flatten())
    }

    /// Updates a person's login after GitHub reported a rename. An older row still holding
    /// that login (someone who gave it up) is moved aside first, as at sign-in.
    pub async fn update_login(&self, user_id: i64, login: &str) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sql::exec(
            &mut *tx,
            "UPDATE users SET login = login || '~' || CAST(id AS TEXT), token_ciphertext = NULL WHERE login = $1 AND id <> $2",
            (login, user_id),
        )
        .await?;
        sql::exec(
            &mut *tx,
            "UPDATE users SET login = $1 WHERE id = $2",
            (login, user_id),
        )
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
        let by_id = format!("{USER_COLUMNS} WHERE id = $1");
        sql::fetch_optional(&self.pool, &by_id, (user_id,)).await
    }

    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let all = format!("{USER_COLUMNS} ORDER BY login");
        sql::fetch_all(&self.pool, &all, ()).await
    }
}
