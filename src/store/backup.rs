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

/// Copies the store as of now into a new file at `to`, which must not exist. The
/// copy is written beside it under a temporary name and linked into place only when
/// complete, so `to` is either absent or a whole backup.
pub fn backup(db: &Database, to: &Path) -> Result<Written, StoreError> {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = to.with_file_name(format!(
        ".{name}.partial-{:016x}",
        crate::ids::random_u128() as u64
    ));
    let written = write_copy(db, &partial).and_then(|entries| {
        // A hard link never replaces an existing file, unlike a rename.
        std::fs::hard_link(&partial, to)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", to.display())))?;
        let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
        Ok(Written { entries, bytes })
    });
    let _ = std::fs::remove_file(&partial);
    written
}

fn write_copy(db: &Database, path: &Path) -> Result<u64, StoreError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", path.display())))?;
    let snapshot = db.begin_read()?;
    let backend = redb::backends::FileBackend::new(file)?;
    let target = Database::builder().create_with_backend(backend)?;
    let txn = target.begin_write()?;
    let entries = tables::copy_all(&snapshot, &txn)?;
    txn.commit()?;
    Ok(entries)
}
