//! API tokens for the pipeline. Only a SHA-256 of each token is stored: tokens are 256
//! random bits, so a fast hash is enough, and a stolen database yields no usable token.

use super::{now_ms, sql, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl Store {
    /// Stores a token's hash under a name; the name must be new.
    pub async fn create_token(&self, name: &str, token_hash: &str) -> Result<()> {
        if sql::exists(
            &self.pool,
            "SELECT id FROM api_tokens WHERE name = $1",
            (name,),
        )
        .await?
        {
            return Err(StoreError::Conflict(format!(
                "a token named {name:?} already exists; revoke it or pick another name"
            )));
        }
        self.write_one(
            "INSERT INTO api_tokens (name, token_hash, created_at) VALUES ($1, $2, $3)",
            (name, token_hash, now_ms()),
        )
        .await?;
        Ok(())
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let rows: Vec<(String, i64, Option<i64>)> = sql::fetch_all(
            &self.pool,
            "SELECT name, created_at, revoked_at FROM api_tokens ORDER BY name",
            (),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, created_at_ms, revoked_at_ms)| TokenInfo {
                name,
                created_at_ms,
                revoked_at_ms,
            })
            .collect())
    }

    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        let revoked = self
            .write_one(
                "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                (now_ms(), name),
            )
            .await?;
        if revoked == 0 {
            return Err(StoreError::NotFound(format!(
                "no active token named {name:?}"
            )));
        }
        Ok(())
    }

    /// The name of the active token with this hash, if any.
    pub async fn token_name(&self, token_hash: &str) -> Result<Option<String>> {
        sql::scalar_optional(
            &self.pool,
            "SELECT name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            (token_hash,),
        )
        .await
    }
}
