//! Browser sessions (the records of tower-sessions, as JSON), written through the same
//! write path as everything else.

use super::{now_ms, Result, Store};

impl Store {
    /// Inserts a new session; `false` when the id is taken (the caller picks another).
    pub async fn session_create(&self, id: &str, data: &str, expires_at_ms: i64) -> Result<bool> {
        let (_guard, mut tx) = self.write().await?;
        let created: Option<String> = sqlx::query_scalar(
            "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at_ms)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(created.is_some())
    }

    pub async fn session_save(&self, id: &str, data: &str, expires_at_ms: i64) -> Result<()> {
        self.write_one(
            sqlx::query(
                "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            )
            .bind(id)
            .bind(data)
            .bind(expires_at_ms),
        )
        .await?;
        Ok(())
    }

    /// The session's data, unless it does not exist or has expired.
    pub async fn session_load(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT data FROM sessions WHERE id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn session_delete(&self, id: &str) -> Result<()> {
        self.write_one(sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id))
            .await?;
        Ok(())
    }

    /// Deletes expired sessions; how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        let (_guard, mut tx) = self.write().await?;
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
