//! SLA deadlines with injected time: breaches fire once per stage at the deadline,
//! a silent supplier set to `reroute` loses the work, deadlines that passed while
//! the daemon was down fire once at start-up, and scorecards add up.

use std::time::Duration;

use marketd::clock::Clock;
use serde_json::{Value, json};

use crate::fake::FakeReceiver;
use crate::support::*;

/// The SLA every supplier here has: ack 1 h, ship 2 h, deliver 3 h.
const ACK_S: u64 = 3_600;
const SHIP_S: u64 = 7_200;
const DELIVER_S: u64 = 10_800;

fn with_alerts(ops: &FakeReceiver) -> InProc {
    let url = ops.url.clone();
    InProc::start_with(move |c| {
        c.alerts_url = Some(url);
        c.alerts_secret = Some(ALERTS_SECRET.into());
    })
}

fn supplier(c: &Client, id: &str, url: &str, on_ack_timeout: &str) -> String {
    add_supplier_with(c, id, url, on_ack_timeout, |body| {
        body["sla"] = json!({"ack_within_s": ACK_S, "ship_within_s": SHIP_S,
            "deliver_within_s": DELIVER_S});
    })
}

fn place(c: &Client, key: &str) -> Value {
    let web = match c.get("/v1/channels/web").status {
        404 => web_key(c),
        _ => panic!("place() makes the channel once; pass orders through one client"),
    };
    c.with_token(Some(&web))
        .order(key, &order_body(json!([{"sku": "x", "qty": 1}])))
        .expect(201)
}

/// A daemon alerting `ops`; supplier acme (only alerted about when silent) offering
/// SKU x; one order for it. Returns the daemon, the operator's client, acme's
/// webhook secret and the order.
fn acme_with_one_order(ops: &FakeReceiver) -> (InProc, Client, String, Value) {
    let d = with_alerts(ops);
    let c = d.client();
    let secret = supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let order = place(&c, "k");
    (d, c, secret, order)
}

fn breaches(c: &Client, open: bool) -> Vec<Value> {
    let q = if open { "?open=true" } else { "" };
    c.get(&format!("/v1/sla/breaches{q}")).expect(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn alerts_of(ops: &FakeReceiver, n: usize, kind: &str) -> Vec<Value> {
    ops.wait_for_distinct(n)
        .iter()
        .filter(|r| r.kind() == kind)
        .map(|r| r.json())
        .collect()
}

#[test]
fn an_unacknowledged_fulfillment_breaches_once_at_ack_by() {
    let ops = FakeReceiver::start(&[]);
    let (d, c, _, order) = acme_with_one_order(&ops);
    let fid = order["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        order["fulfillments"][0]["deadlines"]["ack_by"],
        "2026-11-22T11:00:00Z"
    );
    d.clock.advance_ms(ACK_S * 1000);
    let alert = &alerts_of(&ops, 1, "sla.breached")[0];
    assert!(ops.received()[0].signed_by(ALERTS_SECRET));
    assert_eq!(
        alert["data"],
        json!({"fulfillment": fid, "supplier": "acme", "stage": "ack",
        "deadline": "2026-11-22T11:00:00Z"})
    );
    let open = breaches(&c, true);
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0]["stage"].as_str(), open[0]["open"].as_bool()),
        (Some("ack"), Some(true))
    );
    // With alert only, the supplier keeps the work; a late ack closes the breach.
    let o = c
        .get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
        .expect(200);
    assert_eq!(o["fulfillments"][0]["status"], "routed");
    let card = c.get("/v1/suppliers/acme/scorecard").expect(200);
    assert_eq!(
        (
            card["breaches"]["ack"].as_u64(),
            card["open_breaches"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // The ship deadline passes next: its alert is the sign the timer has moved on.
    d.clock.advance_ms((SHIP_S - ACK_S) * 1000);
    let breached = alerts_of(&ops, 2, "sla.breached");
    let stages: Vec<&str> = breached
        .iter()
        .map(|a| a["data"]["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["ack", "ship"], "each stage fires once");
    let events = c
        .get(&format!(
            "/v1/orders/{}/events",
            order["id"].as_str().unwrap()
        ))
        .expect(200);
    let fired = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "sla.breached")
        .count();
    assert_eq!(fired, 2);
}

#[test]
fn steps_taken_in_time_breach_nothing_and_late_ones_breach_their_stage() {
    let ops = FakeReceiver::start(&[]);
    let (d, c, secret, order) = acme_with_one_order(&ops);
    let fid = order["fulfillments"][0]["id"].clone();
    d.clock.advance_ms(ACK_S * 1000 - 1_000);
    d.supplier_webhook(
        &c,
        ("acme", &secret),
        "a1",
        "fulfillment.acknowledged",
        json!({"fulfillment": fid}),
    )
    .expect(200);
    // Past ack_by and then ship_by without shipping: only the ship stage breaches.
    d.clock.advance_ms((SHIP_S - ACK_S) * 1000 + 1_000);
    let alerts = alerts_of(&ops, 1, "sla.breached");
    assert_eq!(alerts[0]["data"]["stage"], "ship");
    d.supplier_webhook(
        &c,
        ("acme", &secret),
        "s1",
        "fulfillment.shipped",
        json!({"fulfillment": fid, "carrier": "UPS", "tracking_number": "1Z"}),
    )
    .expect(200);
    assert!(
        breaches(&c, true).is_empty(),
        "shipping closes the ship breach"
    );
    d.clock.advance_ms((DELIVER_S - SHIP_S) * 1000);
    let alerts = alerts_of(&ops, 2, "sla.breached");
    assert_eq!(alerts[1]["data"]["stage"], "deliver");
    let all: Vec<String> = breaches(&c, false)
        .iter()
        .map(|b| b["stage"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, ["ship", "deliver"]);
}

#[test]
fn a_silent_supplier_set_to_reroute_loses_the_lines_to_the_next() {
    let (a, b, ops) = (
        FakeReceiver::start(&[]),
        FakeReceiver::start(&[]),
        FakeReceiver::start(&[]),
    );
    let d = with_alerts(&ops);
    let c = d.client();
    supplier(&c, "acme", &a.url, "reroute");
    supplier(&c, "bolt", &b.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5), ("bolt", 20, 5)]);
    let order = place(&c, "k");
    assert_eq!(order["fulfillments"][0]["supplier"], "acme");
    a.wait_for(1);
    d.clock.advance_ms(ACK_S * 1000);
    let to_a = a.wait_for(2);
    assert_eq!(to_a[1].kind(), "fulfillment.cancelled");
    assert_eq!(b.wait_for(1)[0].kind(), "fulfillment.created");
    let o = c
        .get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
        .expect(200);
    let statuses: Vec<(&str, &str)> = o["fulfillments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["supplier"].as_str().unwrap(),
                f["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [("acme", "timed_out"), ("bolt", "routed")]);
    let kinds: Vec<String> = ops.wait_for(2).iter().map(|r| r.kind()).collect();
    assert!(
        kinds.contains(&"sla.breached".to_owned())
            && kinds.contains(&"fulfillment.rerouted".to_owned()),
        "{kinds:?}"
    );
    let s = stock(&c, "x", None);
    assert_eq!(
        (
            s["allocated"].as_u64(),
            s["suppliers"][0]["allocated"].as_u64()
        ),
        (Some(1), Some(0))
    );
}

#[test]
fn the_scorecard_adds_up_a_scripted_history() {
    let d = InProc::start();
    let c = d.client();
    let secret = supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 50)]);
    let web = c.with_token(Some(&web_key(&c)));
    let mut ids: Vec<Value> = Vec::new();
    // Moves the manual clock to `t_s` seconds after T0 (time only goes forward).
    let at = |t_s: u64| d.clock.advance_ms(T0_MS + t_s * 1000 - d.clock.now_ms());
    let order = |ids: &mut Vec<Value>| {
        let o = web
            .order(
                &format!("k{}", ids.len()),
                &order_body(json!([{"sku": "x", "qty": 1}])),
            )
            .expect(201);
        ids.push(o["fulfillments"][0]["id"].clone());
    };
    let step = |n: usize, kind: &str, data: Value| {
        d.supplier_webhook(&c, ("acme", &secret), &format!("{kind}{n}"), kind, data)
            .expect(200);
    };
    // Five fulfillments a minute apart; acks 10 s, 30 s and 50 s after routing, one
    // 4000 s after (its ack_by, 3600 s, passes first), and one rejection.
    order(&mut ids);
    assert_eq!(
        c.get("/v1/suppliers/acme/scorecard").expect(200)["acknowledged_on_time_pct"],
        Value::Null
    );
    at(10);
    step(
        0,
        "fulfillment.acknowledged",
        json!({"fulfillment": ids[0]}),
    );
    at(60);
    order(&mut ids);
    at(90);
    step(
        1,
        "fulfillment.acknowledged",
        json!({"fulfillment": ids[1]}),
    );
    at(120);
    order(&mut ids);
    at(170);
    step(
        2,
        "fulfillment.acknowledged",
        json!({"fulfillment": ids[2]}),
    );
    at(180);
    order(&mut ids);
    at(240);
    order(&mut ids);
    at(250);
    step(
        4,
        "fulfillment.rejected",
        json!({"fulfillment": ids[4], "reason": "no stock"}),
    );
    at(180 + ACK_S);
    eventually(Duration::from_secs(10), "the late ack to breach", || {
        breaches(&c, true).len() == 1
    });
    at(180 + 4_000);
    step(
        3,
        "fulfillment.acknowledged",
        json!({"fulfillment": ids[3]}),
    );

    let card = c.get("/v1/suppliers/acme/scorecard").expect(200);
    assert_eq!(
        card,
        json!({
            "supplier": "acme", "window_s": 2_592_000, "fulfillments": 5,
            "acknowledged_on_time_pct": 60.0, "shipped_on_time_pct": null, "rejected_pct": 20.0,
            "ack_latency_s": {"p50": 30, "p95": 4000, "max": 4000},
            "breaches": {"ack": 1, "ship": 0, "deliver": 0}, "open_breaches": 0,
        })
    );
    // A window only counts fulfillments routed within it.
    let recent = c
        .get("/v1/suppliers/acme/scorecard?window_s=4000")
        .expect(200);
    assert_eq!(
        (
            recent["fulfillments"].as_u64(),
            recent["rejected_pct"].as_f64()
        ),
        (Some(2), Some(50.0))
    );
    assert_eq!(recent["acknowledged_on_time_pct"], 0.0);
    assert_eq!(
        c.get("/v1/suppliers/acme/scorecard?window_s=3000")
            .expect(200)["fulfillments"],
        0
    );
    c.get("/v1/suppliers/acme/scorecard?window_s=0")
        .problem(400, "bad-request");
    c.get("/v1/suppliers/nobody/scorecard")
        .problem(404, "not-found");
}

/// The real binary, its clock moved forward between runs: deadlines that passed
/// while it was down fire once at start-up, and not again after another restart.
#[test]
fn deadlines_missed_while_down_fire_once_at_start_up() {
    let ops = FakeReceiver::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = alerts_config(dir.path(), &ops.url);
    let start = |offset_s: i64| {
        Daemon::start_with(
            dir.path(),
            &[
                "--config",
                config.to_str().unwrap(),
                "--clock-offset-s",
                &offset_s.to_string(),
            ],
        )
    };
    let mut d = start(0);
    let c = d.client();
    supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let order = place(&c, "k");
    assert!(d.stop().success());

    // Down past ack_by (1 h) but not ship_by (2 h).
    let mut d = start(ACK_S as i64 + 600);
    let alerts = alerts_of(&ops, 1, "sla.breached");
    assert_eq!(alerts[0]["data"]["stage"], "ack");
    assert!(d.stop().success());
    // Past ship_by now: the ship alert is the sign the timer ran; ack must not repeat.
    let d = start(SHIP_S as i64 + 600);
    let alerts = alerts_of(&ops, 2, "sla.breached");
    let stages: Vec<&str> = alerts
        .iter()
        .map(|a| a["data"]["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["ack", "ship"]);
    let events = d
        .client()
        .get(&format!(
            "/v1/orders/{}/events",
            order["id"].as_str().unwrap()
        ))
        .expect(200);
    let fired: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "sla.breached")
        .map(|e| e["data"]["stage"].as_str().unwrap())
        .collect();
    assert_eq!(fired, ["ack", "ship"]);
    d.stop_and_check();
}

/// A deadline the store cannot make sense of (its fulfillment's order is gone)
/// fails its batch; the others due with it still fire, one by one.
#[test]
fn a_deadline_that_cannot_fire_does_not_hold_back_the_others() {
    let ops = FakeReceiver::start(&[]);
    let (d, c, _, order) = acme_with_one_order(&ops);
    let ghost = (T0_MS + ACK_S * 1000 - 1, "ful_ghost".to_owned(), 0u8);
    let key = ghost.clone();
    d.app
        .writer
        .write_blocking(move |tx| -> Result<(), marketd::problem::Problem> {
            tx.t.fulfillments.insert("ful_ghost", "ord_ghost")?;
            tx.t.deadlines.insert((key.0, key.1.as_str(), key.2), ())?;
            Ok(())
        })
        .unwrap();
    d.app.live.deadlines.add(ghost);
    d.clock.advance_ms(ACK_S * 1000);
    let alert = &alerts_of(&ops, 1, "sla.breached")[0];
    assert_eq!(alert["data"]["fulfillment"], order["fulfillments"][0]["id"]);
    assert_eq!(breaches(&c, true).len(), 1);
    // Its batch was abandoned whole: the deadline is still due in the store.
    let txn = d.app.store.read().unwrap();
    let due = txn.open_table(marketd::store::tables::DEADLINES).unwrap();
    assert!(
        due.get((T0_MS + ACK_S * 1000 - 1, "ful_ghost", 0u8))
            .unwrap()
            .is_some()
    );
}
