//! `marketd ctl`: a thin HTTP client of the daemon. Each subcommand becomes one
//! request; the answer is printed as a table (or raw JSON with `--json`). A
//! problem answer prints its title and detail and exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::server::OPERATOR_TOKEN_FILE;

/// How to reach the daemon, shared by `ctl` and `backup`.
#[derive(Args, Debug)]
pub struct Connection {
    /// The daemon's base URL.
    #[arg(
        long,
        env = "MARKETD_URL",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub url: String,
    /// Operator token (default: read from DATA/operator.token).
    #[arg(long, env = "MARKETD_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory holding operator.token.
    #[arg(
        long,
        env = "MARKETD_DATA",
        default_value = "marketd-data",
        global = true
    )]
    pub data: PathBuf,
    /// Print the daemon's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CtlArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Suppliers: add, list, show, approve, suspend, rotate-secret, scorecard.
    Suppliers {
        #[command(subcommand)]
        cmd: SupplierCmd,
    },
    /// SKUs and offers.
    Skus {
        #[command(subcommand)]
        cmd: SkuCmd,
    },
    /// Channels and listings.
    Channels {
        #[command(subcommand)]
        cmd: ChannelCmd,
    },
    /// Stock levels and supplier stock uploads.
    Stock {
        #[command(subcommand)]
        cmd: StockCmd,
    },
    /// Orders placed through the checkout.
    Orders {
        #[command(subcommand)]
        cmd: OrderCmd,
    },
    /// Fulfillments: move one to another supplier.
    Fulfillments {
        #[command(subcommand)]
        cmd: FulfillmentCmd,
    },
    /// Outbound webhooks and their attempts.
    Deliveries {
        #[command(subcommand)]
        cmd: DeliveryCmd,
    },
    /// SLA breaches.
    Sla {
        #[command(subcommand)]
        cmd: SlaCmd,
    },
    /// The audit trail.
    Events {
        #[command(subcommand)]
        cmd: EventCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum SupplierCmd {
    /// Create or update a supplier.
    Add {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long, default_value_t = 14_400)]
        ack_within_s: u64,
        #[arg(long, default_value_t = 172_800)]
        ship_within_s: u64,
        #[arg(long, default_value_t = 604_800)]
        deliver_within_s: u64,
        /// alert or reroute.
        #[arg(long, default_value = "alert")]
        on_ack_timeout: String,
        #[arg(long, default_value_t = 0)]
        commission_bps: u32,
        #[arg(long, default_value_t = 0)]
        breach_penalty: u64,
    },
    List,
    Show {
        id: String,
    },
    Approve {
        id: String,
    },
    Suspend {
        id: String,
    },
    RotateSecret {
        id: String,
    },
    /// On-time rates, ack latency and breaches over a window.
    Scorecard {
        id: String,
        /// The window, in seconds (default 30 days).
        #[arg(long)]
        window_s: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SkuCmd {
    /// Create or update a SKU.
    Put {
        sku: String,
        #[arg(long)]
        product: String,
        #[arg(long)]
        title: String,
        /// Unit price in minor units.
        #[arg(long)]
        price: u64,
        #[arg(long, default_value_t = 0)]
        safety_stock: u32,
        /// An attribute as name=value; repeat for more.
        #[arg(long = "attr")]
        attributes: Vec<String>,
    },
    List {
        #[arg(long)]
        product: Option<String>,
    },
    Show {
        sku: String,
    },
    /// Say a supplier can fulfil a SKU under its own code (or --delete the offer).
    Offer {
        sku: String,
        supplier: String,
        #[arg(long, required_unless_present = "delete")]
        supplier_sku: Option<String>,
        #[arg(long, default_value_t = 0)]
        priority: u32,
        #[arg(long)]
        delete: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ChannelCmd {
    /// Create or update a channel (its api key is shown once, on creation).
    Put {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long, default_value_t = 0)]
        buffer_units: u32,
        #[arg(long, default_value_t = 0)]
        buffer_pct: u32,
    },
    List,
    /// Map the channel's own listing id to a SKU.
    Listing {
        channel: String,
        listing: String,
        #[arg(long)]
        sku: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StockCmd {
    /// A SKU's stock, as a channel would see it with --channel.
    Show {
        sku: String,
        #[arg(long)]
        channel: Option<String>,
    },
    /// Report a supplier's on-hand counts: CODE=N pairs (supplier SKUs), or --csv FILE.
    Set {
        supplier: String,
        /// supplier_sku=on_hand pairs.
        items: Vec<String>,
        /// A CSV file with the header supplier_sku,on_hand (or sku,on_hand); - for stdin.
        #[arg(long, conflicts_with = "items")]
        csv: Option<PathBuf>,
        /// When the counts were true (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrderCmd {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        supplier: Option<String>,
        #[arg(long)]
        channel: Option<String>,
    },
    Show {
        id: String,
    },
    /// The order's events, oldest first.
    Timeline {
        id: String,
    },
    /// Cancel what has not shipped; the suppliers are told.
    Cancel {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SlaCmd {
    /// Breaches, newest fulfillments last; --open for the unresolved ones.
    Breaches {
        #[arg(long)]
        open: bool,
        #[arg(long)]
        supplier: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FulfillmentCmd {
    /// Move a fulfillment's lines to --supplier, or to the next one able to take them.
    Reroute {
        id: String,
        #[arg(long)]
        supplier: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeliveryCmd {
    List {
        /// pending, failed or delivered.
        #[arg(long)]
        status: Option<String>,
    },
    /// Send a failed or pending delivery again now.
    Retry { id: String },
}

#[derive(Subcommand, Debug)]
pub enum EventCmd {
    /// Events after a sequence number, oldest first.
    Tail {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// One request to make.
struct Call {
    method: &'static str,
    path: String,
    body: Option<(&'static str, String)>,
    /// Columns for a list answer; None prints a single object.
    columns: Option<&'static [&'static str]>,
}

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn get(path: String, columns: Option<&'static [&'static str]>) -> Call {
    Call {
        method: "GET",
        path,
        body: None,
        columns,
    }
}

fn send(method: &'static str, path: String, body: Value) -> Call {
    Call {
        method,
        path,
        body: Some(("application/json", body.to_string())),
        columns: None,
    }
}

fn post(path: String) -> Call {
    Call {
        method: "POST",
        path,
        body: None,
        columns: None,
    }
}

const SUPPLIER_COLUMNS: &[&str] = &["id", "name", "status", "commission_bps", "on_ack_timeout"];
const SKU_COLUMNS: &[&str] = &["sku", "product", "title", "price", "safety_stock"];
const CHANNEL_COLUMNS: &[&str] = &["id", "name", "buffer_units", "buffer_pct"];
const ORDER_COLUMNS: &[&str] = &["id", "channel", "status", "total", "created_at"];
const EVENT_COLUMNS: &[&str] = &["seq", "at", "type", "actor", "subject"];
const BREACH_COLUMNS: &[&str] = &["fulfillment", "supplier", "stage", "deadline", "open"];
const DELIVERY_COLUMNS: &[&str] = &[
    "id",
    "type",
    "receiver",
    "status",
    "attempt_count",
    "next_attempt_at",
];

fn to_call(cmd: CtlCommand) -> Result<Call, String> {
    Ok(match cmd {
        CtlCommand::Suppliers { cmd } => match cmd {
            SupplierCmd::Add {
                id,
                name,
                webhook_url,
                ack_within_s,
                ship_within_s,
                deliver_within_s,
                on_ack_timeout,
                commission_bps,
                breach_penalty,
            } => send(
                "PUT",
                format!("/v1/suppliers/{}", seg(&id)),
                json!({
                    "name": name, "webhook_url": webhook_url,
                    "sla": {"ack_within_s": ack_within_s, "ship_within_s": ship_within_s, "deliver_within_s": deliver_within_s},
                    "on_ack_timeout": on_ack_timeout, "commission_bps": commission_bps, "breach_penalty": breach_penalty}),
            ),
            SupplierCmd::List => get("/v1/suppliers?limit=1000".into(), Some(SUPPLIER_COLUMNS)),
            SupplierCmd::Show { id } => get(format!("/v1/suppliers/{}", seg(&id)), None),
            SupplierCmd::Approve { id } => post(format!("/v1/suppliers/{}/approve", seg(&id))),
            SupplierCmd::Suspend { id } => post(format!("/v1/suppliers/{}/suspend", seg(&id))),
            SupplierCmd::RotateSecret { id } => {
                post(format!("/v1/suppliers/{}/rotate-secret", seg(&id)))
            }
            SupplierCmd::Scorecard { id, window_s } => get(
                format!(
                    "/v1/suppliers/{}/scorecard{}",
                    seg(&id),
                    query(&[("window_s", window_s.map(|w| w.to_string()))])
                ),
                None,
            ),
        },
        CtlCommand::Skus { cmd } => match cmd {
            SkuCmd::Put {
                sku,
                product,
                title,
                price,
                safety_stock,
                attributes,
            } => {
                let mut attrs = serde_json::Map::new();
                for a in attributes {
                    let (k, v) = a
                        .split_once('=')
                        .ok_or_else(|| format!("--attr {a:?} is not name=value"))?;
                    attrs.insert(k.to_owned(), json!(v));
                }
                send(
                    "PUT",
                    format!("/v1/skus/{}", seg(&sku)),
                    json!({"product": product, "title": title,
                    "attributes": attrs, "price": price, "safety_stock": safety_stock}),
                )
            }
            SkuCmd::List { product } => get(
                format!(
                    "/v1/skus{}",
                    query(&[("limit", Some("1000".into())), ("product", product)])
                ),
                Some(SKU_COLUMNS),
            ),
            SkuCmd::Show { sku } => get(format!("/v1/skus/{}", seg(&sku)), None),
            SkuCmd::Offer {
                sku,
                supplier,
                delete: true,
                ..
            } => Call {
                method: "DELETE",
                path: format!("/v1/skus/{}/offers/{}", seg(&sku), seg(&supplier)),
                body: None,
                columns: None,
            },
            SkuCmd::Offer {
                sku,
                supplier,
                supplier_sku,
                priority,
                delete: false,
            } => send(
                "PUT",
                format!("/v1/skus/{}/offers/{}", seg(&sku), seg(&supplier)),
                json!({"supplier_sku": supplier_sku, "priority": priority}),
            ),
        },
        CtlCommand::Channels { cmd } => match cmd {
            ChannelCmd::Put {
                id,
                name,
                webhook_url,
                buffer_units,
                buffer_pct,
            } => send(
                "PUT",
                format!("/v1/channels/{}", seg(&id)),
                json!({"name": name, "webhook_url": webhook_url, "buffer_units": buffer_units, "buffer_pct": buffer_pct}),
            ),
            ChannelCmd::List => get("/v1/channels?limit=1000".into(), Some(CHANNEL_COLUMNS)),
            ChannelCmd::Listing {
                channel,
                listing,
                sku,
            } => send(
                "PUT",
                format!("/v1/channels/{}/listings/{}", seg(&channel), seg(&listing)),
                json!({"sku": sku}),
            ),
        },
        CtlCommand::Stock { cmd } => match cmd {
            StockCmd::Show { sku, channel } => get(
                format!("/v1/stock/{}{}", seg(&sku), query(&[("channel", channel)])),
                None,
            ),
            StockCmd::Set {
                supplier,
                items,
                csv,
                as_of,
            } => stock_set(supplier, items, csv, as_of)?,
        },
        CtlCommand::Orders { cmd } => match cmd {
            OrderCmd::List {
                status,
                supplier,
                channel,
            } => get(
                format!(
                    "/v1/orders{}",
                    query(&[
                        ("limit", Some("1000".into())),
                        ("status", status),
                        ("supplier", supplier),
                        ("channel", channel)
                    ])
                ),
                Some(ORDER_COLUMNS),
            ),
            OrderCmd::Show { id } => get(format!("/v1/orders/{}", seg(&id)), None),
            OrderCmd::Timeline { id } => get(
                format!("/v1/orders/{}/events?limit=1000", seg(&id)),
                Some(EVENT_COLUMNS),
            ),
            OrderCmd::Cancel { id } => post(format!("/v1/orders/{}/cancel", seg(&id))),
        },
        CtlCommand::Sla { cmd } => match cmd {
            SlaCmd::Breaches { open, supplier } => get(
                format!(
                    "/v1/sla/breaches{}",
                    query(&[
                        ("limit", Some("1000".into())),
                        ("open", open.then(|| "true".into())),
                        ("supplier", supplier),
                    ])
                ),
                Some(BREACH_COLUMNS),
            ),
        },
        CtlCommand::Fulfillments { cmd } => match cmd {
            FulfillmentCmd::Reroute { id, supplier } => send(
                "POST",
                format!("/v1/fulfillments/{}/reroute", seg(&id)),
                json!({"supplier": supplier}),
            ),
        },
        CtlCommand::Deliveries { cmd } => match cmd {
            DeliveryCmd::List { status } => get(
                format!(
                    "/v1/deliveries{}",
                    query(&[("limit", Some("1000".into())), ("status", status)])
                ),
                Some(DELIVERY_COLUMNS),
            ),
            DeliveryCmd::Retry { id } => post(format!("/v1/deliveries/{}/retry", seg(&id))),
        },
        CtlCommand::Events { cmd } => match cmd {
            EventCmd::Tail { after, limit } => get(
                format!("/v1/events?after={after}&limit={limit}"),
                Some(EVENT_COLUMNS),
            ),
        },
    })
}

fn stock_set(
    supplier: String,
    items: Vec<String>,
    csv: Option<PathBuf>,
    as_of: Option<String>,
) -> Result<Call, String> {
    let path = format!("/v1/suppliers/{}/stock", seg(&supplier));
    if let Some(file) = csv {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| format!("cannot read stdin: {e}"))?
        } else {
            std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        };
        let path = format!("{path}{}", query(&[("as_of", as_of)]));
        return Ok(Call {
            method: "POST",
            path,
            body: Some(("text/csv", text)),
            columns: None,
        });
    }
    let mut rows = Vec::new();
    for item in items {
        let (code, n) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not supplier_sku=on_hand"))?;
        let n: i64 = n
            .parse()
            .map_err(|_| format!("{item:?}: on_hand must be a whole number"))?;
        rows.push(json!({"supplier_sku": code, "on_hand": n}));
    }
    let mut body = json!({"items": rows});
    if let Some(as_of) = as_of {
        body["as_of"] = json!(as_of);
    }
    Ok(send("POST", path, body))
}

fn token(args: &Connection) -> Result<String, String> {
    if let Some(t) = &args.token {
        return Ok(t.clone());
    }
    let path = args.data.join(OPERATOR_TOKEN_FILE);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| format!("no --token and cannot read {}: {e}", path.display()))
}

pub fn run(args: CtlArgs) -> ExitCode {
    finish(
        to_call(args.command).and_then(|call| execute(&args.connection, call, REQUEST_TIMEOUT_S)),
    )
}

/// `marketd backup --to FILE`: asks the daemon for an online copy at FILE, a path on
/// the daemon's machine (relative paths are taken from here).
pub fn backup(connection: &Connection, to: &std::path::Path) -> ExitCode {
    let to = match std::path::absolute(to) {
        Ok(p) => p,
        Err(e) => return finish(Err(format!("bad path {}: {e}", to.display()))),
    };
    let call = send("POST", "/v1/backup".into(), json!({"to": to}));
    finish(execute(connection, call, BACKUP_TIMEOUT_S))
}

fn finish(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// How long `ctl` waits for an answer, and `backup` (which copies the whole store).
const REQUEST_TIMEOUT_S: u64 = 30;
const BACKUP_TIMEOUT_S: u64 = 3_600;

fn execute(args: &Connection, call: Call, timeout_s: u64) -> Result<(), String> {
    let token = token(args)?;
    let json_out = args.json;
    let base = args.url.trim_end_matches('/').to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(timeout_s)))
        .build()
        .into();
    let url = format!("{base}{}", call.path);
    let auth = format!("Bearer {token}");
    let result = match (call.method, call.body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        (method, Some((content_type, body))) => {
            let req = if method == "PUT" {
                agent.put(&url)
            } else {
                agent.post(&url)
            };
            req.header("Authorization", &auth)
                .content_type(content_type)
                .send(body)
        }
        (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
    };
    let mut response = result.map_err(|e| format!("cannot reach marketd at {base}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .map_err(|_| format!("marketd answered {status} with: {text}"))?
    };
    if status >= 400 {
        let title = value["title"].as_str().unwrap_or("Error");
        let detail = value["detail"].as_str().unwrap_or("");
        if json_out {
            println!("{value}");
        }
        return Err(format!("{title}: {detail}"));
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if value.is_null() {
        println!("done");
    } else {
        match call.columns {
            Some(columns) => print_table(
                value["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                columns,
            ),
            None => print_object(&value),
        }
    }
    Ok(())
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A list as aligned columns.
fn print_table(items: &[Value], columns: &[&str]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| columns.iter().map(|c| cell(&i[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(n, c)| {
            rows.iter()
                .map(|r| r[n].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

/// One object as `key  value` lines; nested values as compact JSON.
fn print_object(value: &Value) {
    let Some(obj) = value.as_object() else {
        println!("{value}");
        return;
    };
    let width = obj.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in obj {
        println!("{k:<width$}  {}", cell(v));
    }
}
