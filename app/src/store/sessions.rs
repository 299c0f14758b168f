//! Browser sessions (the records of tower-sessions, as JSON), written through the same
//! write path as everything else.

use super::{now_ms, sql, Result, Store};

impl Store {
    /// Inserts a new session; `false` when the id is taken (the caller picks another).
    pub async fn session_create(&self, id: &str, data: &str, expires_at_ms: i64) -> Result<bool> {
        let (_guard, mut tx) = self.write().await?;
        let created: Option<String> = sql::scalar_optional(
            &mut *tx,
            "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id",
            (id, data, expires_at_ms),
        )
        .await?;
        tx.commit().await?;
        Ok(created.is_some())
    }

    pub async fn session_save(&self, id: &str, data: &str, expires_at_ms: i64) -> Result<()> {
        self.write_one(
            "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            (id, data, expires_at_ms),
        )
        .await?;
        Ok(())
    }

    /// The session's data, unless it does not exist or has expired.
    pub async fn session_load(&self, id: &str) -> Result<Option<String>> {
        sql::scalar_optional(
            &self.pool,
            "SELECT data FROM sessions WHERE id = $1 AND expires_at > $2",
            (id, now_ms()),
        )
        .await
    }

    pub async fn session_delete(&self, id: &str) -> Result<()> {
        self.write_one("DELETE FROM sessions WHERE id = $1", (id,))
            .await?;
        Ok(())
    }

    /// Deletes expired sessions; how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        self.write_one("DELETE FROM sessions WHERE expires_at <= $1", (now_ms(),))
            .await
    }
}
