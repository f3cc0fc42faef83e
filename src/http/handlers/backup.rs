//! `POST /v1/backup`: an online, consistent copy of the store to a file on the
//! daemon's machine (where `marketd backup` runs).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::Call;
use crate::clock::format_rfc3339;
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::server::App;
use crate::store::{StoreError, backup};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupInput {
    /// An absolute path that does not exist yet, in an existing directory.
    to: PathBuf,
}

pub async fn run(call: Call) -> Result<Response<Body>, Problem> {
    let Call {
        app, parts, body, ..
    } = call;
    let input: BackupInput = io::parse_json(&parts, &body)?;
    let to = input.to;
    if !to.is_absolute() || to.parent().is_none_or(|p| !p.is_dir()) {
        return Err(Problem::invalid(format!(
            "to must be an absolute path in an existing directory, got {}",
            to.display()
        )));
    }
    if to.exists() {
        return Err(Problem::conflict(
            "exists",
            "Target exists",
            format!("{} already exists; backups never overwrite", to.display()),
        ));
    }
    // One backup at a time: each reads the whole store.
    if app
        .backup_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(Problem::busy("a backup is already running"));
    }
    let (db, target, running) = (
        app.store.database().clone(),
        to.clone(),
        Running(app.clone()),
    );
    let written = tokio::task::spawn_blocking(move || {
        let _running = running;
        backup::backup(&db, &target)
    })
    .await
    .map_err(|e| Problem::internal(format!("backup task failed: {e}")))?
    .map_err(|e| match e {
        StoreError::Db(why) => {
            Problem::internal(format!("backup to {} failed: {why}", to.display()))
        }
        other => Problem::from(other),
    })?;
    tracing::info!(to = %to.display(), bytes = written.bytes, "backup written");
    Ok(io::json(
        StatusCode::OK,
        &json!({"to": to, "entries": written.entries, "bytes": written.bytes,
        "at": format_rfc3339(app.clock.now_ms())}),
    ))
}

/// Lets the next backup start however this one ends, a panic included.
struct Running(Arc<App>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.backup_running.store(false, Ordering::Release);
    }
}
