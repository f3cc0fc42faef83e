//! The redb tables. Keys are short strings or big-endian integers so range scans
//! follow id (and so time) order; values are [`super::codec`] records unless noted.

use redb::{Table, TableDefinition, WriteTransaction};

/// `schema_version` → u32 (postcard record).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const SUPPLIERS: TableDefinition<&str, &[u8]> = TableDefinition::new("suppliers");
pub const SKUS: TableDefinition<&str, &[u8]> = TableDefinition::new("skus");
/// (product, sku) → (): the SKUs of a product.
pub const PRODUCT_SKUS: TableDefinition<(&str, &str), ()> = TableDefinition::new("product_skus");
/// (sku, supplier) → Offer.
pub const OFFERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("offers");
/// (supplier, supplier_sku) → sku: resolves a supplier's own codes.
pub const SUPPLIER_SKUS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("supplier_skus");
/// (supplier, sku) → Position: what the supplier reported and what is allocated to it.
pub const POSITIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("positions");
pub const CHANNELS: TableDefinition<&str, &[u8]> = TableDefinition::new("channels");
/// SHA-256 of an api key → channel id.
pub const CHANNEL_KEYS: TableDefinition<&[u8], &str> = TableDefinition::new("channel_keys");
/// (channel, listing) → sku.
pub const LISTINGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("listings");
/// seq → Event: the append-only audit trail.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (subject, seq) → (): the timeline of one subject (an order, a supplier, …).
pub const SUBJECT_EVENTS: TableDefinition<(&str, u64), ()> = TableDefinition::new("subject_events");
/// order id → Order (with its fulfillments).
pub const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
/// fulfillment id → order id.
pub const FULFILLMENTS: TableDefinition<&str, &str> = TableDefinition::new("fulfillments");
/// (channel, Idempotency-Key) → IdempotencyRecord.
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");
/// delivery id → Delivery: the transactional outbox.
pub const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// (next_attempt_at_ms, delivery id) → (): pending deliveries by when they are due.
pub const OUTBOX_DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("outbox_due");
/// (supplier, webhook-id) → received_at_ms: inbound webhooks already applied.
pub const WEBHOOK_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("webhook_ids");
/// (received_at_ms, supplier, webhook-id) → (): the same, by age, for pruning.
pub const WEBHOOK_IDS_BY_AGE: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("webhook_ids_by_age");

/// (deadline_ms, fulfillment id, stage) → (): deadlines not yet met or fired.
pub const DEADLINES: TableDefinition<(u64, &str, u8), ()> = TableDefinition::new("deadlines");
/// (fulfillment id, stage) → Breach.
pub const BREACHES: TableDefinition<(&str, u8), &[u8]> = TableDefinition::new("breaches");
/// (supplier, created_at_ms, fulfillment id) → FulfillmentRecord: scorecard history.
pub const SUPPLIER_HISTORY: TableDefinition<(&str, u64, &str), &[u8]> =
    TableDefinition::new("supplier_history");
/// supplier → number of its open breaches.
pub const OPEN_BREACHES: TableDefinition<&str, u64> = TableDefinition::new("open_breaches");

/// Every table, opened once per write batch: opening a table costs a lookup and
/// closing it a root update, so commands share these instead.
pub struct Open<'t> {
    pub suppliers: Table<'t, &'static str, &'static [u8]>,
    pub skus: Table<'t, &'static str, &'static [u8]>,
    pub product_skus: Table<'t, (&'static str, &'static str), ()>,
    pub offers: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub supplier_skus: Table<'t, (&'static str, &'static str), &'static str>,
    pub positions: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub channels: Table<'t, &'static str, &'static [u8]>,
    pub channel_keys: Table<'t, &'static [u8], &'static str>,
    pub listings: Table<'t, (&'static str, &'static str), &'static str>,
    pub events: Table<'t, u64, &'static [u8]>,
    pub subject_events: Table<'t, (&'static str, u64), ()>,
    pub orders: Table<'t, &'static str, &'static [u8]>,
    pub fulfillments: Table<'t, &'static str, &'static str>,
    pub idempotency: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub outbox: Table<'t, &'static str, &'static [u8]>,
    pub outbox_due: Table<'t, (u64, &'static str), ()>,
    pub webhook_ids: Table<'t, (&'static str, &'static str), u64>,
    pub webhook_ids_by_age: Table<'t, (u64, &'static str, &'static str), ()>,
    pub deadlines: Table<'t, (u64, &'static str, u8), ()>,
    pub breaches: Table<'t, (&'static str, u8), &'static [u8]>,
    pub supplier_history: Table<'t, (&'static str, u64, &'static str), &'static [u8]>,
    pub open_breaches: Table<'t, &'static str, u64>,
}

impl<'t> Open<'t> {
    pub fn all(txn: &'t WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            suppliers: txn.open_table(SUPPLIERS)?,
            skus: txn.open_table(SKUS)?,
            product_skus: txn.open_table(PRODUCT_SKUS)?,
            offers: txn.open_table(OFFERS)?,
            supplier_skus: txn.open_table(SUPPLIER_SKUS)?,
            positions: txn.open_table(POSITIONS)?,
            channels: txn.open_table(CHANNELS)?,
            channel_keys: txn.open_table(CHANNEL_KEYS)?,
            listings: txn.open_table(LISTINGS)?,
            events: txn.open_table(EVENTS)?,
            subject_events: txn.open_table(SUBJECT_EVENTS)?,
            orders: txn.open_table(ORDERS)?,
            fulfillments: txn.open_table(FULFILLMENTS)?,
            idempotency: txn.open_table(IDEMPOTENCY)?,
            outbox: txn.open_table(OUTBOX)?,
            outbox_due: txn.open_table(OUTBOX_DUE)?,
            webhook_ids: txn.open_table(WEBHOOK_IDS)?,
            webhook_ids_by_age: txn.open_table(WEBHOOK_IDS_BY_AGE)?,
            deadlines: txn.open_table(DEADLINES)?,
            breaches: txn.open_table(BREACHES)?,
            supplier_history: txn.open_table(SUPPLIER_HISTORY)?,
            open_breaches: txn.open_table(OPEN_BREACHES)?,
        })
    }
}
