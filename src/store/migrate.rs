//! Upgrades a store written by an older marketd. Runs at start-up, in the
//! transaction that records the new schema version, so a store is either wholly
//! upgraded or not at all.

use redb::{ReadableTable, Table};
use serde::Deserialize;

use super::{StoreError, codec};
use crate::clock::Millis;
use crate::domain::{Attempt, Delivery, DeliveryBody, DeliveryStatus, Receiver};

/// Deliveries converted per pass over the outbox, so the upgrade holds a bounded
/// number of records in memory whatever the outbox's size.
const CHUNK_MAX: usize = 10_000;

/// A delivery as schema 1 stored it: the body always as JSON text.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct DeliveryV1 {
    id: String,
    receiver: Receiver,
    kind: String,
    body: String,
    status: DeliveryStatus,
    attempt_count: u32,
    attempts: Vec<Attempt>,
    next_attempt_at_ms: Millis,
    created_at_ms: Millis,
}

/// Schema 1 → 2: a delivery's body became [`DeliveryBody`]; old bodies are JSON
/// text. Returns the deliveries converted.
pub fn v1_to_v2(outbox: &mut Table<'_, &'static str, &'static [u8]>) -> Result<u64, StoreError> {
    let mut converted = 0;
    let mut after: Option<String> = None;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK_MAX);
        let range = match &after {
            Some(last) => outbox.range::<&str>((
                std::ops::Bound::Excluded(last.as_str()),
                std::ops::Bound::Unbounded,
            ))?,
            None => outbox.range::<&str>(..)?,
        };
        for entry in range.take(CHUNK_MAX) {
            let (_, v) = entry?;
            let old: DeliveryV1 = codec::decode(v.value())?;
            chunk.push(Delivery {
                id: old.id,
                receiver: old.receiver,
                kind: old.kind,
                body: DeliveryBody::Json(old.body),
                status: old.status,
                attempt_count: old.attempt_count,
                attempts: old.attempts,
                next_attempt_at_ms: old.next_attempt_at_ms,
                created_at_ms: old.created_at_ms,
            });
        }
        let Some(last) = chunk.last() else {
            return Ok(converted);
        };
        after = Some(last.id.clone());
        for d in &chunk {
            outbox.insert(d.id.as_str(), codec::encode(d).as_slice())?;
        }
        converted += chunk.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;
    use crate::store::{SCHEMA_VERSION, Store, tables};

    #[test]
    fn a_schema_1_outbox_is_upgraded_at_open_and_its_bodies_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = DeliveryV1 {
            id: "dlv_1".into(),
            receiver: Receiver::Operator,
            kind: "sla.breached".into(),
            body: r#"{"type":"sla.breached"}"#.into(),
            status: DeliveryStatus::Pending,
            attempt_count: 1,
            attempts: Vec::new(),
            next_attempt_at_ms: 5,
            created_at_ms: 4,
        };
        {
            // A store as schema 1 left it.
            let store = Store::open(dir.path()).unwrap();
            let txn = store.database().begin_write().unwrap();
            {
                let mut meta = txn.open_table(tables::META).unwrap();
                meta.insert("schema_version", codec::encode(&1u32).as_slice())
                    .unwrap();
                let mut outbox = txn.open_table(tables::OUTBOX).unwrap();
                outbox
                    .insert("dlv_1", codec::encode(&old).as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let txn = store.database().begin_read().unwrap();
        let meta = txn.open_table(tables::META).unwrap();
        let version: u32 =
            codec::decode(meta.get("schema_version").unwrap().unwrap().value()).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let outbox = txn.open_table(tables::OUTBOX).unwrap();
        let d: Delivery = codec::decode(outbox.get("dlv_1").unwrap().unwrap().value()).unwrap();
        assert_eq!(d.body, DeliveryBody::Json(old.body));
        assert_eq!(
            (d.attempt_count, d.next_attempt_at_ms, d.created_at_ms),
            (1, 5, 4)
        );
    }
}
