//! Operations: ctl against a live daemon, the offline check, the schema guard,
//! metrics, and a clean exit on SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn ctl(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--url", &d.base, "--data"])
        .arg(&d.data)
        .args(args)
        .output()
        .expect("run ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn ctl_drives_the_catalog_end_to_end() {
    let d = Daemon::start();
    let (ok, out, _) = ctl(
        &d,
        &[
            "suppliers",
            "add",
            "acme",
            "--name",
            "Acme Outdoor",
            "--commission-bps",
            "1500",
        ],
    );
    assert!(ok);
    assert!(
        out.contains("whsec_"),
        "the new secret is shown once: {out}"
    );
    assert!(ctl(&d, &["suppliers", "approve", "acme"]).0);
    let (_, table, _) = ctl(&d, &["suppliers", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("acme") && l.contains("approved")),
        "{table}"
    );
    assert!(
        ctl(
            &d,
            &[
                "skus",
                "put",
                "tent/green",
                "--product",
                "tent",
                "--title",
                "Tent",
                "--price",
                "19900",
                "--attr",
                "color=green"
            ]
        )
        .0
    );
    assert!(
        ctl(
            &d,
            &[
                "skus",
                "offer",
                "tent/green",
                "acme",
                "--supplier-sku",
                "AC-1",
                "--priority",
                "3"
            ]
        )
        .0
    );
    assert!(ctl(&d, &["stock", "set", "acme", "AC-1=9"]).0);
    let (ok, out, _) = ctl(&d, &["--json", "stock", "show", "tent/green"]);
    assert!(ok);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["on_hand"], 9);
    let csv = d.data.join("stock.csv");
    std::fs::write(&csv, "supplier_sku,on_hand\nAC-1,4\n").unwrap();
    assert!(
        ctl(
            &d,
            &["stock", "set", "acme", "--csv", csv.to_str().unwrap()]
        )
        .0
    );
    assert_eq!(stock(&d.client(), "tent%2Fgreen", None)["on_hand"], 4);
    assert!(
        ctl(
            &d,
            &[
                "channels",
                "put",
                "web",
                "--name",
                "Web",
                "--buffer-units",
                "1"
            ]
        )
        .0
    );
    assert!(
        ctl(
            &d,
            &["channels", "listing", "web", "L-9", "--sku", "tent/green"]
        )
        .0
    );
    let (_, events, _) = ctl(&d, &["events", "tail", "--limit", "1000"]);
    assert!(events.contains("listing.put"), "{events}");
    // Failure: non-zero exit and the problem's title.
    let (ok, _, err) = ctl(&d, &["suppliers", "show", "nobody"]);
    assert!(!ok);
    assert!(err.contains("Not found"), "{err}");
    let (ok, _, err) = ctl(&d, &["--token", "wrong", "suppliers", "list"]);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
}

#[test]
fn check_passes_on_a_healthy_store_and_fails_on_a_broken_one() {
    let mut d = Daemon::start();
    let c = d.client();
    let key = seed(&c, "tent", 10, 0);
    c.with_token(Some(&key))
        .order("k", &json!({"channel": "web", "lines": [{"sku": "tent", "qty": 2}], "customer": {"ref": "c"},
            "ship_to": ship_to()}))
        .expect(201);
    assert!(d.stop().success());
    let check = check_store(&d.data);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("1 orders"));

    // Break an invariant behind marketd's back: allocate units no order holds.
    {
        let db = redb::Database::open(d.data.join("marketd.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut positions = txn.open_table(marketd::store::tables::POSITIONS).unwrap();
            let p = marketd::domain::Position {
                on_hand: 10,
                allocated: 7,
                as_of_ms: 0,
            };
            positions
                .insert(
                    ("acme", "tent"),
                    marketd::store::codec::encode(&p).as_slice(),
                )
                .unwrap();
            // And a delivery whose body refers to an order that does not exist.
            let dangling = marketd::domain::Delivery {
                id: "dlv_dangling".into(),
                receiver: marketd::domain::Receiver::Supplier("acme".into()),
                kind: "fulfillment.created".into(),
                body: marketd::domain::DeliveryBody::FulfillmentCreated {
                    order: "ord_gone".into(),
                    fulfillment: "ful_gone".into(),
                },
                status: marketd::domain::DeliveryStatus::Delivered,
                attempt_count: 1,
                attempts: Vec::new(),
                next_attempt_at_ms: 0,
                created_at_ms: 0,
            };
            let mut outbox = txn.open_table(marketd::store::tables::OUTBOX).unwrap();
            outbox
                .insert(
                    "dlv_dangling",
                    marketd::store::codec::encode(&dangling).as_slice(),
                )
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let check = check_store(&d.data);
    assert_eq!(check.status.code(), Some(1));
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("allocated 7 but open fulfillments hold 2"));
    assert!(report.contains("delivery dlv_dangling: no order ord_gone"));
}

#[test]
fn a_store_from_a_newer_marketd_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("marketd.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(marketd::store::tables::META)
            .unwrap()
            .insert(
                "schema_version",
                marketd::store::codec::encode(&99u32).as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema version 99"));
}

#[test]
fn bad_flags_and_config_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(&config, "currency = \"usd\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("currency"));
    std::fs::write(&config, "listne = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));
    let out = Command::new(BIN)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .args(["serve", "--clock-offset-s", &i64::MAX.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clock_offset_s"));
}

#[test]
fn config_file_and_environment_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(&config, "[limits]\nlines_max = 2\n").unwrap();
    let d = Daemon::start_with(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--log-format", "json"],
    );
    let c = d.client();
    let key = seed(&c, "tent", 10, 0);
    let lines =
        json!([{"sku": "tent", "qty": 1}, {"sku": "tent", "qty": 1}, {"sku": "tent", "qty": 1}]);
    let p = c.with_token(Some(&key)).post(
        "/v1/reservations",
        &json!({"channel": "web", "lines": lines}),
    );
    assert!(
        p.problem(422, "invalid")["detail"]
            .as_str()
            .unwrap()
            .contains("1 to 2 lines")
    );
}

#[test]
fn metrics_count_requests_by_route_and_commits() {
    let d = Daemon::start();
    let c = d.client();
    seed(&c, "tent", 1, 0);
    c.get("/v1/skus/nope").expect(404);
    let text = d.anonymous().get("/metrics").expect(200);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("marketd_http_requests_total{route=\"/v1/skus/{}\",status=\"2xx\"} 1"),
        "{text}"
    );
    assert!(text.contains("marketd_http_requests_total{route=\"/v1/skus/{}\",status=\"4xx\"} 1"));
    assert!(
        text.contains("marketd_http_request_seconds_bucket{route=\"/v1/skus/{}\",le=\"+Inf\"} 1")
    );
    assert!(text.contains("marketd_store_commit_seconds_count"));
    assert!(text.contains("marketd_store_batch_commands_bucket"));
    assert!(text.contains("marketd_reservations_live 0"));
    assert!(text.contains("marketd_store_write_queue 0"));
}

#[test]
fn sigterm_drains_commits_and_exits_zero() {
    let mut d = Daemon::start();
    seed(&d.client(), "tent", 1, 0);
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn ctl_runs_orders_fulfillments_and_deliveries() {
    let d = Daemon::start();
    let c = d.client();
    add_supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_supplier(&c, "bolt", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 5), ("bolt", 20, 5)]);
    let key = web_key(&c);
    let order = c
        .with_token(Some(&key))
        .order(
            "k",
            &json!({"channel": "web", "lines": [{"sku": "x", "qty": 1}], "customer": {"ref": "c"},
            "ship_to": ship_to()}),
        )
        .expect(201);
    let (oid, fid) = (
        order["id"].as_str().unwrap(),
        order["fulfillments"][0]["id"].as_str().unwrap(),
    );
    let (_, listed, _) = ctl(&d, &["orders", "list", "--status", "routed"]);
    assert!(listed.contains(oid), "{listed}");
    let (ok, out, _) = ctl(
        &d,
        &[
            "--json",
            "fulfillments",
            "reroute",
            fid,
            "--supplier",
            "bolt",
        ],
    );
    assert!(ok, "{out}");
    let moved: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(moved["fulfillments"][1]["supplier"], "bolt");
    let (_, timeline, _) = ctl(&d, &["orders", "timeline", oid]);
    assert!(timeline.contains("fulfillment.cancelled"), "{timeline}");
    assert!(ctl(&d, &["orders", "cancel", oid]).0);
    let (ok, _, err) = ctl(&d, &["orders", "cancel", oid]);
    assert!(!ok && err.contains("Nothing to cancel"), "{err}");
    let (_, deliveries, _) = ctl(&d, &["deliveries", "list"]);
    assert!(
        deliveries.contains("fulfillment.created") && deliveries.contains("supplier:bolt"),
        "{deliveries}"
    );
    let dlv = deliveries
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (ok, _, err) = ctl(&d, &["deliveries", "retry", &dlv]);
    assert!(ok || err.contains("Already delivered"), "{err}");
}

#[test]
fn an_online_backup_is_a_consistent_store_of_its_own() {
    let d = Daemon::start();
    let c = d.client();
    let key = seed(&c, "tent", 10, 0);
    let order = c
        .with_token(Some(&key))
        .order("k", &json!({"channel": "web", "lines": [{"sku": "tent", "qty": 3}], "customer": {"ref": "c"},
            "ship_to": ship_to()}))
        .expect(201);
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("marketd.redb");
    let backup = || {
        Command::new(BIN)
            .args(["backup", "--url", &d.base, "--data"])
            .arg(&d.data)
            .arg("--to")
            .arg(&target)
            .output()
            .unwrap()
    };
    let out = backup();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Never over an existing file; relative paths are refused by the daemon.
    let again = backup();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("Target exists"));
    c.post("/v1/backup", &json!({"to": "relative.redb"}))
        .problem(422, "invalid");
    // The daemon kept serving; the copy checks clean and serves the same data.
    assert_eq!(stock(&c, "tent", None)["allocated"], 3);
    let check = check_store(copy.path());
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    std::fs::copy(
        d.data.join("operator.token"),
        copy.path().join("operator.token"),
    )
    .unwrap();
    let restored = Daemon::start_in(copy.path());
    let rc = restored.client();
    assert_eq!(
        rc.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
            .expect(200)["id"],
        order["id"]
    );
    assert_eq!(stock(&rc, "tent", None)["allocated"], 3);
}

/// A connection that sends nothing is closed after `limits.header_read_timeout_s`,
/// so silent clients cannot hold every connection place.
#[test]
fn silent_connections_are_closed() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(&config, "[limits]\nheader_read_timeout_s = 1\n").unwrap();
    let d = Daemon::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let mut idle = std::net::TcpStream::connect(d.base.trim_start_matches("http://")).unwrap();
    idle.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    // The server closes its end: a read returns 0 bytes well before our own timeout.
    assert_eq!(idle.read(&mut buf).unwrap(), 0);
}

/// `ctl sla breaches` lists a real breach, `--open` drops it once a late ack
/// closes it; `ctl suppliers scorecard` shows the window asked for.
#[test]
fn ctl_shows_breaches_and_scorecards() {
    const ACK_S: i64 = 3_600;
    let mut d = Daemon::start();
    let c = d.client();
    let secret = add_supplier_with(&c, "acme", "http://127.0.0.1:9/h", "alert", |body| {
        body["sla"] = json!({"ack_within_s": ACK_S, "ship_within_s": 2 * ACK_S,
            "deliver_within_s": 3 * ACK_S});
    });
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let order = c
        .with_token(Some(&web_key(&c)))
        .order("k", &order_body(json!([{"sku": "x", "qty": 1}])))
        .expect(201);
    let fid = order["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    let (ok, out, _) = ctl(
        &d,
        &[
            "--json",
            "suppliers",
            "scorecard",
            "acme",
            "--window-s",
            "3600",
        ],
    );
    assert!(ok, "{out}");
    let card: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (card["window_s"].as_u64(), card["fulfillments"].as_u64()),
        (Some(3600), Some(1))
    );

    // Back past ack_by: the deadline fires at start-up.
    assert!(d.stop().success());
    let offset_s = ACK_S + 600;
    let mut later = Daemon::start_with(&d.data, &["--clock-offset-s", &offset_s.to_string()]);
    let c = later.client();
    eventually(Duration::from_secs(30), "the ack breach", || {
        listed(&c, "/v1/sla/breaches?open=true") == 1
    });
    let (ok, open, _) = ctl(&later, &["sla", "breaches", "--open"]);
    assert!(
        ok && open.starts_with("FULFILLMENT") && open.contains(&fid),
        "{open}"
    );
    let ack = json!({"type": "fulfillment.acknowledged", "data": {"fulfillment": fid}});
    supplier_webhook(&c, "acme", &secret, "a1", now_s() + offset_s, &ack).expect(200);
    let (ok, open, _) = ctl(&later, &["sla", "breaches", "--open"]);
    assert!(
        ok && !open.contains(&fid),
        "a closed breach is not open: {open}"
    );
    let (ok, all, _) = ctl(&later, &["sla", "breaches"]);
    assert!(ok && all.contains(&fid), "{all}");
    let (ok, _, err) = ctl(&later, &["suppliers", "scorecard", "nobody"]);
    assert!(!ok && err.contains("Not found"), "{err}");
    assert!(later.stop().success());
}
