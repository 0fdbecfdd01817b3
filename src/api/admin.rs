//! `/api/admin/…` (role admin): operations. `POST /api/admin/backup` writes a consistent
//! copy of the store under `data_dir/backups/` while hookd keeps running.

use hyper::StatusCode;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, HttpResponse, json};
use crate::model::Millis;

#[derive(Serialize)]
struct BackupAnswer {
    path: String,
    bytes: u64,
    events: u64,
}

pub async fn backup(state: &AppState) -> Result<HttpResponse, ApiError> {
    let dir = state.config.data_dir.join("backups");
    let stamp = Millis::now().to_rfc3339().replace([':', '.'], "");
    let store = state.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dest = dir.join(format!("hookd-{stamp}.redb"));
        let events = store.backup_to(&dest).map_err(|e| e.to_string())?;
        let path = std::fs::canonicalize(&dest).unwrap_or(dest);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok::<_, String>(BackupAnswer {
            path: path.display().to_string(),
            bytes,
            events,
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("backup task failed: {e}")))?
    .map_err(|e| {
        tracing::error!(error = %e, "backup failed");
        ApiError::internal(format!("backup failed: {e}"))
    })?;
    tracing::info!(path = %written.path, bytes = written.bytes, events = written.events, "backup written");
    json(StatusCode::OK, &written)
}
