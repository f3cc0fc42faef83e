//! The durable store: one redb file. Reads open a read transaction anywhere; every
//! write goes through the one store-writer thread ([`writer`]), which group-commits.
//!
//! This module knows redb and postcard; it does not know HTTP or JSON bodies.

pub mod backup;
pub mod catalog;
pub mod codec;
pub mod fulfillments;
pub mod migrate;
pub mod orders;
pub mod outbox;
pub mod read;
pub mod sla;
pub mod tables;
pub mod webhooks;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

pub use writer::{Tx, Writer};

/// The schema this build writes. A store with a newer one is refused at start-up;
/// an older one is upgraded ([`migrate`]).
///
/// 2: a delivery's body may be a reference to the order it is rendered from.
pub const SCHEMA_VERSION: u32 = 2;

/// The store file inside the data directory.
pub const STORE_FILE: &str = "marketd.redb";

/// Errors at the store boundary.
#[derive(Debug)]
pub enum StoreError {
    /// redb failed (I/O, a full disk, a corrupt file).
    Db(String),
    /// A record could not be decoded.
    Corrupt(String),
    /// The writer's queue is full; try again.
    Busy,
    /// The writer has stopped (shutting down).
    Closed,
    /// The store was written by a newer marketd.
    SchemaTooNew { found: u32, known: u32 },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "store error: {e}"),
            Self::Corrupt(e) => write!(f, "store record is corrupt: {e}"),
            Self::Busy => f.write_str("the store writer's queue is full"),
            Self::Closed => f.write_str("the store writer has stopped"),
            Self::SchemaTooNew { found, known } => write!(
                f,
                "the store has schema version {found} but this marketd knows only up to \
                 {known}; run a newer marketd or restore a backup"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Shared read access to the store file.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the store in `data_dir`, checking and recording the schema.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", data_dir.display())))?;
        let db = Database::create(store_path(data_dir))?;
        let store = Self { db: Arc::new(db) };
        store.ensure_schema()?;
        Ok(store)
    }

    fn ensure_schema(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let open = tables::Open::all(&txn)?; // Readers never meet a missing table.
            let mut meta = open.meta;
            let found = match meta.get("schema_version")? {
                Some(v) => Some(codec::decode::<u32>(v.value())?),
                None => None,
            };
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::SchemaTooNew {
                        found: v,
                        known: SCHEMA_VERSION,
                    });
                }
                Some(SCHEMA_VERSION) => {}
                Some(older) => {
                    if older < 2 {
                        let mut outbox = open.outbox;
                        let converted = migrate::v1_to_v2(&mut outbox)?;
                        tracing::info!(converted, "store upgraded from schema 1 to 2");
                    }
                    meta.insert("schema_version", codec::encode(&SCHEMA_VERSION).as_slice())?;
                }
                None => {
                    meta.insert("schema_version", codec::encode(&SCHEMA_VERSION).as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }
}

pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_FILE)
}

/// The last event sequence number written, 0 when there is none.
pub fn last_event_seq(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let events = txn.open_table(tables::EVENTS)?;
    Ok(events.last()?.map(|(k, _)| k.value()).unwrap_or(0))
}
