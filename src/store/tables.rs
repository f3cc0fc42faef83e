//! The redb tables, declared once: their definitions, the set a write batch keeps
//! open, and the copy a backup makes all come from the one list below. Keys are
//! short strings or big-endian integers so range scans follow id (and so time)
//! order; `&[u8]` values are [`super::codec`] records.

use redb::{
    Key, ReadTransaction, ReadableTable, Table, TableDefinition, TableError, Value,
    WriteTransaction,
};

macro_rules! tables {
    ($( $(#[$doc:meta])* $name:ident / $field:ident : $k:ty => $v:ty = $label:literal; )*) => {
        $( $(#[$doc])* pub const $name: TableDefinition<$k, $v> = TableDefinition::new($label); )*

        /// Every table, opened once per write batch: opening a table costs a lookup
        /// and closing it a root update, so commands share these instead.
        pub struct Open<'t> {
            $( pub $field: Table<'t, $k, $v>, )*
        }

        impl<'t> Open<'t> {
            /// Opens (creating where missing) every table.
            pub fn all(txn: &'t WriteTransaction) -> Result<Self, TableError> {
                Ok(Self { $( $field: txn.open_table($name)?, )* })
            }
        }

        /// Copies every table of a read snapshot into `to`; returns the entries copied.
        pub fn copy_all(from: &ReadTransaction, to: &WriteTransaction) -> Result<u64, redb::Error> {
            let mut copied = 0;
            $( copied += copy(from, to, $name)?; )*
            Ok(copied)
        }
    };
}

fn copy<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, redb::Error> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    let mut copied = 0;
    for entry in source.iter()? {
        let (k, v) = entry?;
        target.insert(k.value(), v.value())?;
        copied += 1;
    }
    Ok(copied)
}

tables! {
    /// `schema_version` → u32 (postcard record).
    META / meta: &'static str => &'static [u8] = "meta";
    SUPPLIERS / suppliers: &'static str => &'static [u8] = "suppliers";
    SKUS / skus: &'static str => &'static [u8] = "skus";
    /// (product, sku) → (): the SKUs of a product.
    PRODUCT_SKUS / product_skus: (&'static str, &'static str) => () = "product_skus";
    /// (sku, supplier) → Offer.
    OFFERS / offers: (&'static str, &'static str) => &'static [u8] = "offers";
    /// (supplier, supplier_sku) → sku: resolves a supplier's own codes.
    SUPPLIER_SKUS / supplier_skus: (&'static str, &'static str) => &'static str = "supplier_skus";
    /// (supplier, sku) → Position: what the supplier reported and what is allocated to it.
    POSITIONS / positions: (&'static str, &'static str) => &'static [u8] = "positions";
    CHANNELS / channels: &'static str => &'static [u8] = "channels";
    /// SHA-256 of an api key → channel id.
    CHANNEL_KEYS / channel_keys: &'static [u8] => &'static str = "channel_keys";
    /// (channel, listing) → sku.
    LISTINGS / listings: (&'static str, &'static str) => &'static str = "listings";
    /// seq → Event: the append-only audit trail.
    EVENTS / events: u64 => &'static [u8] = "events";
    /// (subject, seq) → (): the timeline of one subject (an order, a supplier, …).
    SUBJECT_EVENTS / subject_events: (&'static str, u64) => () = "subject_events";
    /// order id → Order (with its fulfillments).
    ORDERS / orders: &'static str => &'static [u8] = "orders";
    /// fulfillment id → order id.
    FULFILLMENTS / fulfillments: &'static str => &'static str = "fulfillments";
    /// (channel, Idempotency-Key) → IdempotencyRecord.
    IDEMPOTENCY / idempotency: (&'static str, &'static str) => &'static [u8] = "idempotency";
    /// delivery id → Delivery: the transactional outbox.
    OUTBOX / outbox: &'static str => &'static [u8] = "outbox";
    /// (next_attempt_at_ms, delivery id) → (): pending deliveries by when they are due.
    OUTBOX_DUE / outbox_due: (u64, &'static str) => () = "outbox_due";
    /// delivery id → (): deliveries that gave up, awaiting an operator.
    FAILED_DELIVERIES / failed_deliveries: &'static str => () = "failed_deliveries";
    /// (supplier, webhook-id) → received_at_ms: inbound webhooks already applied.
    WEBHOOK_IDS / webhook_ids: (&'static str, &'static str) => u64 = "webhook_ids";
    /// (received_at_ms, supplier, webhook-id) → (): the same, by age, for pruning.
    WEBHOOK_IDS_BY_AGE / webhook_ids_by_age: (u64, &'static str, &'static str) => () = "webhook_ids_by_age";
    /// (deadline_ms, fulfillment id, stage) → (): deadlines not yet met or fired.
    DEADLINES / deadlines: (u64, &'static str, u8) => () = "deadlines";
    /// (fulfillment id, stage) → Breach.
    BREACHES / breaches: (&'static str, u8) => &'static [u8] = "breaches";
    /// (supplier, created_at_ms, fulfillment id) → FulfillmentRecord: scorecard history.
    SUPPLIER_HISTORY / supplier_history: (&'static str, u64, &'static str) => &'static [u8] = "supplier_history";
    /// supplier → number of its open breaches.
    OPEN_BREACHES / open_breaches: &'static str => u64 = "open_breaches";
}
