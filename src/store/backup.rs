//! Online backups: every table of one read snapshot copied into a new redb file,
//! while the daemon keeps serving. The snapshot makes the copy consistent: it is
//! the store as of one commit.

use std::path::Path;

use redb::{Database, ReadableDatabase};

use super::{StoreError, tables};

/// What a backup wrote.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub entries: u64,
    pub bytes: u64,
}

/// Copies the store as of now into a new file at `to`, which must not exist.
pub fn backup(db: &Database, to: &Path) -> Result<Written, StoreError> {
    if to.exists() {
        return Err(StoreError::Db(format!("{} already exists", to.display())));
    }
    let snapshot = db.begin_read()?;
    let target = Database::create(to)?;
    let txn = target.begin_write()?;
    let entries = tables::copy_all(&snapshot, &txn)?;
    txn.commit()?;
    drop(target);
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(Written { entries, bytes })
}
