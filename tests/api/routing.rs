//! Routing and webhooks both ways, against fake suppliers and a fake operator
//! endpoint that verify marketd's signatures and record what they get.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake::FakeReceiver;
use crate::support::*;

fn order(c: &Client, key: &str, lines: Value) -> Value {
    c.order(key, &order_body(lines)).expect(201)
}

/// A daemon whose operator alerts go to a fake endpoint.
fn daemon_with_alerts(alerts: &FakeReceiver) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = alerts_config(dir.path(), &alerts.url);
    (
        Daemon::start_with(dir.path(), &["--config", config.to_str().unwrap()]),
        dir,
    )
}

fn fulfillment_of<'a>(order: &'a Value, supplier: &str) -> &'a Value {
    order["fulfillments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["supplier"] == supplier)
        .unwrap()
}

/// Supplier `acme` (webhooks to `url`) with 5 units of SKU `x`, and one order for
/// one of them; returns acme's webhook secret.
fn acme_with_one_order(c: &Client, url: &str) -> String {
    let secret = add_supplier(c, "acme", url, "alert");
    add_sku(c, "x", &[("acme", 10, 5)]);
    order(
        &c.with_token(Some(&web_key(c))),
        "k",
        json!([{"sku": "x", "qty": 1}]),
    );
    secret
}

#[test]
fn three_lines_over_two_suppliers_make_two_signed_fulfillments() {
    let (a, b) = (FakeReceiver::start(&[]), FakeReceiver::start(&[]));
    let d = Daemon::start();
    let c = d.client();
    let secret_a = add_supplier(&c, "acme", &a.url, "alert");
    let secret_b = add_supplier(&c, "bolt", &b.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    add_sku(&c, "y", &[("bolt", 10, 5)]);
    add_sku(&c, "z", &[("acme", 10, 5), ("bolt", 20, 5)]);
    let web = c.with_token(Some(&web_key(&c)));
    let o = order(
        &web,
        "k",
        json!([{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}, {"sku": "z", "qty": 3}]),
    );
    assert_eq!(o["fulfillments"].as_array().unwrap().len(), 2);
    let fa = fulfillment_of(&o, "acme");
    assert_eq!(
        fa["lines"],
        json!([{"sku": "x", "supplier_sku": "acme-x", "qty": 1},
        {"sku": "z", "supplier_sku": "acme-z", "qty": 3}])
    );

    let got_a = a.wait_for(1);
    let got_b = b.wait_for(1);
    assert!(got_a[0].signed_by(&secret_a) && !got_a[0].signed_by(&secret_b));
    assert!(got_b[0].signed_by(&secret_b));
    let body = got_a[0].json();
    assert_eq!(body["type"], "fulfillment.created");
    assert_eq!(body["data"]["fulfillment"], fa["id"]);
    assert_eq!(body["data"]["lines"], fa["lines"]);
    assert_eq!(body["data"]["ship_to"]["country"], "US");
    assert_eq!(body["data"]["deadlines"], fa["deadlines"]);
    assert!(body["timestamp"].as_str().is_some());
    assert_eq!(
        got_b[0].json()["data"]["lines"][0]["supplier_sku"],
        "bolt-y"
    );
    let sent = wait_delivered(&c, 2);
    assert!(sent.iter().all(|d| d["attempt_count"] == 1));
}

fn wait_delivered(c: &Client, n: usize) -> Vec<Value> {
    eventually(Duration::from_secs(30), "deliveries to be recorded", || {
        deliveries(c, "delivered").len() >= n
    });
    deliveries(c, "delivered")
}

#[test]
fn ack_ship_deliver_moves_the_order_to_delivered_with_tracking() {
    let a = FakeReceiver::start(&[]);
    let d = Daemon::start();
    let c = d.client();
    let secret = add_supplier(&c, "acme", &a.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let web = c.with_token(Some(&web_key(&c)));
    let o = order(&web, "k", json!([{"sku": "x", "qty": 2}]));
    let (oid, fid) = (
        o["id"].as_str().unwrap().to_owned(),
        o["fulfillments"][0]["id"].as_str().unwrap().to_owned(),
    );
    let hook = |id: &str, kind: &str, data: Value| {
        supplier_webhook(
            &c,
            "acme",
            &secret,
            id,
            now_s(),
            &json!({"type": kind, "data": data}),
        )
    };
    assert_eq!(
        hook(
            "m1",
            "fulfillment.acknowledged",
            json!({"fulfillment": fid})
        )
        .expect(200)["status"],
        "applied"
    );
    let o = web.get(&format!("/v1/orders/{oid}")).expect(200);
    assert_eq!(
        (
            o["status"].as_str(),
            o["fulfillments"][0]["status"].as_str()
        ),
        (Some("routed"), Some("acknowledged"))
    );
    hook(
        "m2",
        "fulfillment.shipped",
        json!({"fulfillment": fid, "carrier": "UPS", "tracking_number": "1Z9",
        "tracking_url": "https://track.example/1Z9"}),
    )
    .expect(200);
    let o = web.get(&format!("/v1/orders/{oid}")).expect(200);
    assert_eq!(o["status"], "shipped");
    assert_eq!(
        o["fulfillments"][0]["tracking"],
        json!({"carrier": "UPS", "tracking_number": "1Z9",
        "tracking_url": "https://track.example/1Z9"})
    );
    // Shipped units leave on_hand and allocated together.
    let s = stock(&c, "x", None);
    assert_eq!(
        (
            s["on_hand"].as_u64(),
            s["allocated"].as_u64(),
            s["available"].as_u64()
        ),
        (Some(3), Some(0), Some(3))
    );
    hook("m3", "fulfillment.delivered", json!({"fulfillment": fid})).expect(200);
    assert_eq!(
        web.get(&format!("/v1/orders/{oid}")).expect(200)["status"],
        "delivered"
    );
    // An impossible step is 409 and changes nothing.
    hook(
        "m4",
        "fulfillment.rejected",
        json!({"fulfillment": fid, "reason": "late"}),
    )
    .problem(409, "invalid-transition");
    assert_eq!(
        order_event_types(&c, &oid),
        [
            "order.created",
            "fulfillment.routed",
            "fulfillment.acknowledged",
            "fulfillment.shipped",
            "fulfillment.delivered"
        ]
    );
    let timeline = c.get(&format!("/v1/orders/{oid}/events")).expect(200);
    assert_eq!(timeline["items"][2]["actor"], "supplier:acme");
}

#[test]
fn a_rejection_reroutes_to_the_next_supplier_and_alerts_the_operator() {
    let (a, b, ops) = (
        FakeReceiver::start(&[]),
        FakeReceiver::start(&[]),
        FakeReceiver::start(&[]),
    );
    let (d, _dir) = daemon_with_alerts(&ops);
    let c = d.client();
    let secret_a = add_supplier(&c, "acme", &a.url, "alert");
    add_supplier(&c, "bolt", &b.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5), ("bolt", 20, 5)]);
    let web = c.with_token(Some(&web_key(&c)));
    let o = order(&web, "k", json!([{"sku": "x", "qty": 2}]));
    let fid = o["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(o["fulfillments"][0]["supplier"], "acme");
    a.wait_for(1);
    supplier_webhook(&c, "acme", &secret_a, "r1", now_s(),
        &json!({"type": "fulfillment.rejected", "data": {"fulfillment": fid, "reason": "out of stock"}})).expect(200);
    let o = web
        .get(&format!("/v1/orders/{}", o["id"].as_str().unwrap()))
        .expect(200);
    assert_eq!(o["status"], "routed");
    assert_eq!(fulfillment_of(&o, "acme")["status"], "rejected");
    assert_eq!(fulfillment_of(&o, "acme")["reason"], "out of stock");
    let to_bolt = fulfillment_of(&o, "bolt");
    assert_eq!(to_bolt["lines"][0]["qty"], 2);
    assert_eq!(
        b.wait_for(1)[0].json()["data"]["fulfillment"],
        to_bolt["id"]
    );
    let alert = ops.wait_for(1);
    assert!(alert[0].signed_by(ALERTS_SECRET));
    assert_eq!(alert[0].kind(), "fulfillment.rerouted");
    assert_eq!(alert[0].json()["data"]["from"], "acme");
    let s = stock(&c, "x", None);
    assert_eq!(
        (
            s["allocated"].as_u64(),
            s["suppliers"][0]["allocated"].as_u64()
        ),
        (Some(2), Some(0))
    );

    // The operator cannot move bolt's lines anywhere (acme had its turn); then cancels.
    let ful_b = to_bolt["id"].as_str().unwrap();
    c.post(&format!("/v1/fulfillments/{ful_b}/reroute"), &json!({}))
        .problem(409, "no-supplier");
    let cancelled = c
        .post_empty(&format!("/v1/orders/{}/cancel", o["id"].as_str().unwrap()))
        .expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    let to_b = b.wait_for(2);
    assert_eq!(to_b[1].kind(), "fulfillment.cancelled");
    // acme rejected: it is not told its fulfillment was cancelled.
    wait_delivered(&c, 4);
    assert!(
        a.received()
            .iter()
            .all(|r| r.kind() == "fulfillment.created")
    );
    assert_eq!(stock(&c, "x", None)["available"], 10);
    d.stop_and_check();
}

#[test]
fn no_supplier_left_makes_the_lines_unfulfillable_with_an_alert() {
    let (a, ops) = (FakeReceiver::start(&[]), FakeReceiver::start(&[]));
    let (d, _dir) = daemon_with_alerts(&ops);
    let c = d.client();
    let secret = add_supplier(&c, "acme", &a.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let web = c.with_token(Some(&web_key(&c)));
    let o = order(&web, "k", json!([{"sku": "x", "qty": 2}]));
    supplier_webhook(
        &c,
        "acme",
        &secret,
        "r1",
        now_s(),
        &json!({"type": "fulfillment.rejected",
        "data": {"fulfillment": o["fulfillments"][0]["id"]}}),
    )
    .expect(200);
    let o = web
        .get(&format!("/v1/orders/{}", o["id"].as_str().unwrap()))
        .expect(200);
    assert_eq!(o["status"], "unfulfillable");
    assert_eq!(o["unfulfillable"], json!([{"sku": "x", "qty": 2}]));
    let alert = ops.wait_for(1);
    assert_eq!(alert[0].kind(), "order.unfulfillable");
    assert_eq!(
        alert[0].json()["data"]["lines"],
        json!([{"sku": "x", "qty": 2}])
    );
    assert_eq!(
        stock(&c, "x", None)["available"],
        5,
        "the rejected units are sellable again"
    );
}

#[test]
fn operator_reroute_to_a_named_supplier_tells_the_first_it_lost_the_work() {
    let (a, b) = (FakeReceiver::start(&[]), FakeReceiver::start(&[]));
    let d = Daemon::start();
    let c = d.client();
    add_supplier(&c, "acme", &a.url, "alert");
    add_supplier(&c, "bolt", &b.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5), ("bolt", 20, 1)]);
    let web = c.with_token(Some(&web_key(&c)));
    let o = order(&web, "k", json!([{"sku": "x", "qty": 2}]));
    let fid = o["fulfillments"][0]["id"].as_str().unwrap();
    c.post(
        &format!("/v1/fulfillments/{fid}/reroute"),
        &json!({"supplier": "bolt"}),
    )
    .problem(409, "no-supplier");
    c.post(
        "/v1/suppliers/bolt/stock",
        &json!({"items": [{"sku": "x", "on_hand": 4}]}),
    )
    .expect(200);
    let moved = c
        .post(
            &format!("/v1/fulfillments/{fid}/reroute"),
            &json!({"supplier": "bolt"}),
        )
        .expect(200);
    assert_eq!(fulfillment_of(&moved, "acme")["status"], "cancelled");
    assert_eq!(fulfillment_of(&moved, "bolt")["status"], "routed");
    let to_a = a.wait_for(2);
    assert_eq!(to_a[1].kind(), "fulfillment.cancelled");
    assert_eq!(to_a[1].json()["data"]["fulfillment"], fid);
    assert_eq!(b.wait_for(1)[0].kind(), "fulfillment.created");
    d.stop_and_check();
}

#[test]
fn stock_updates_by_webhook_are_absolute_and_ignore_older_reports() {
    let d = Daemon::start();
    let c = d.client();
    let secret = add_supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 0)]);
    let update = |id: &str, as_of: &str, n: i64| {
        supplier_webhook(
            &c,
            "acme",
            &secret,
            id,
            now_s(),
            &json!({"type": "stock.updated",
            "data": {"as_of": as_of, "items": [{"supplier_sku": "acme-x", "on_hand": n}]}}),
        )
    };
    update("s1", &at(0), 12).expect(200);
    assert_eq!(stock(&c, "x", None)["on_hand"], 12);
    update("s2", &at(-60), 99).expect(200);
    assert_eq!(
        stock(&c, "x", None)["on_hand"],
        12,
        "an older report changes nothing"
    );
    update("s3", &at(60), 4).expect(200);
    assert_eq!(stock(&c, "x", None)["on_hand"], 4);
    update("s4", &at(120), -1).problem(400, "bad-request");
    // A count from the future would make every later one look stale: refused.
    update("s6", "2099-01-01T00:00:00Z", 50).problem(422, "invalid");
    supplier_webhook(
        &c,
        "acme",
        &secret,
        "s5",
        now_s(),
        &json!({"type": "stock.updated",
        "data": {"as_of": &at(120), "items": [{"supplier_sku": "nope", "on_hand": 1}]}}),
    )
    .problem(422, "invalid");
    assert_eq!(stock(&c, "x", None)["on_hand"], 4);
}

#[test]
fn forged_stale_and_replayed_webhooks_change_nothing() {
    let d = Daemon::start();
    let c = d.client();
    let secret = add_supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    let other = add_supplier(&c, "bolt", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let body = json!({"type": "stock.updated", "data": {"as_of": &at(0),
        "items": [{"supplier_sku": "acme-x", "on_hand": 50}]}});
    let bytes = body.to_string().into_bytes();
    let before = event_count(&c);
    let post = |headers: &[(&str, &str)]| {
        c.with_token(None).raw(
            "POST",
            "/webhooks/suppliers/acme",
            Some(("application/json", bytes.clone())),
            headers,
        )
    };
    let ts = now_s().to_string();
    let good = marketd::secret::sign_webhook(&secret, "w1", now_s(), &bytes).unwrap();
    post(&[("webhook-id", "w1"), ("webhook-timestamp", &ts)]).problem(401, "unauthorized");
    post(&[
        ("webhook-id", "w1"),
        ("webhook-timestamp", &ts),
        ("webhook-signature", "v1,bm9wZQ=="),
    ])
    .problem(401, "unauthorized");
    post(&[
        ("webhook-id", "w1"),
        ("webhook-timestamp", &ts),
        ("webhook-signature", "v1,"),
    ])
    .problem(401, "unauthorized");
    let by_other = marketd::secret::sign_webhook(&other, "w1", now_s(), &bytes).unwrap();
    post(&[
        ("webhook-id", "w1"),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &by_other),
    ])
    .problem(401, "unauthorized");
    post(&[
        ("webhook-id", "w2"),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &good),
    ])
    .problem(401, "unauthorized");
    for skew in [-600, 600] {
        supplier_webhook(&c, "acme", &secret, "w1", now_s() + skew, &body)
            .problem(401, "unauthorized");
    }
    supplier_webhook(&c, "bolt", &secret, "w1", now_s(), &body).problem(401, "unauthorized");
    assert_eq!(stock(&c, "x", None)["on_hand"], 5);
    assert_eq!(event_count(&c), before);

    // Accepted once; the same id again — even re-signed with a new timestamp — is a no-op.
    assert_eq!(
        supplier_webhook(&c, "acme", &secret, "w1", now_s(), &body).expect(200)["status"],
        "applied"
    );
    c.post(
        "/v1/suppliers/acme/stock",
        &json!({"as_of": &at(1),
        "items": [{"sku": "x", "on_hand": 7}]}),
    )
    .expect(200);
    let events = event_count(&c);
    let replay = supplier_webhook(&c, "acme", &secret, "w1", now_s() + 1, &body).expect(200);
    assert_eq!(replay["status"], "duplicate");
    assert_eq!(stock(&c, "x", None)["on_hand"], 7);
    assert_eq!(event_count(&c), events);
}

#[test]
fn suppliers_only_touch_their_own_fulfillments_and_bad_events_are_400() {
    let d = Daemon::start();
    let c = d.client();
    add_supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    let bolt = add_supplier(&c, "bolt", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    let web = c.with_token(Some(&web_key(&c)));
    let o = order(&web, "k", json!([{"sku": "x", "qty": 1}]));
    let fid = o["fulfillments"][0]["id"].clone();
    let hook = |id: &str, body: Value| supplier_webhook(&c, "bolt", &bolt, id, now_s(), &body);
    hook(
        "b1",
        json!({"type": "fulfillment.acknowledged", "data": {"fulfillment": fid}}),
    )
    .problem(403, "forbidden");
    hook(
        "b2",
        json!({"type": "fulfillment.teleported", "data": {"fulfillment": fid}}),
    )
    .problem(400, "bad-request");
    hook(
        "b3",
        json!({"type": "fulfillment.shipped", "data": {"fulfillment": fid}}),
    )
    .problem(400, "bad-request");
    hook(
        "b4",
        json!({"type": "fulfillment.acknowledged", "data": {"fulfillment": "ful_nope"}}),
    )
    .problem(404, "not-found");
    let raw = c.with_token(None).raw(
        "POST",
        "/webhooks/suppliers/bolt",
        Some(("application/json", b"{".to_vec())),
        &[
            ("webhook-id", "b5"),
            ("webhook-timestamp", &now_s().to_string()),
            (
                "webhook-signature",
                &marketd::secret::sign_webhook(&bolt, "b5", now_s(), b"{").unwrap(),
            ),
        ],
    );
    raw.problem(400, "bad-request");
    assert_eq!(
        web.get(&format!("/v1/orders/{}", o["id"].as_str().unwrap()))
            .expect(200)["fulfillments"][0]["status"],
        "routed"
    );
}

/// Time is injected: the retry schedule is checked by moving the clock, not waiting.
#[test]
fn a_receiver_failing_twice_gets_the_event_once_with_attempts_recorded() {
    let a = FakeReceiver::start(&[500, 503]);
    let d = InProc::start();
    let c = d.client();
    let secret = acme_with_one_order(&c, &a.url);
    let first = a.wait_for(1);
    let attempts = |n: u64| {
        eventually(
            Duration::from_secs(10),
            "the attempt to be recorded",
            || {
                deliveries(&c, "pending")
                    .first()
                    .is_some_and(|d| d["attempt_count"] == n)
                    || deliveries(&c, "delivered").len() == 1
            },
        );
    };
    attempts(1);
    let pending = &deliveries(&c, "pending")[0];
    assert_eq!(pending["attempts"][0]["status"], 500);
    // Times are shown to the second; the jitter adds up to 10% of the delay.
    let next_at =
        |d: &Value| marketd::clock::parse_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let next = next_at(pending);
    assert!(
        (T0_MS + 5_000..=T0_MS + 5_500).contains(&next),
        "first retry 5 s (+10% jitter) later"
    );
    d.clock.advance_ms(4_999);
    assert_eq!(deliveries(&c, "pending")[0]["attempt_count"], 1);
    assert_eq!(a.received().len(), 1, "nothing is sent before it is due");
    let now = next + 1_000;
    d.clock.advance_ms(now - T0_MS - 4_999);
    a.wait_for(2);
    attempts(2);
    let next2 = next_at(&deliveries(&c, "pending")[0]);
    assert!(
        (now + 299_000..=now + 330_000).contains(&next2),
        "second retry 5 min later"
    );
    d.clock.advance_ms(next2 + 1_000 - now);
    let got = a.wait_for(3);
    eventually(Duration::from_secs(10), "delivery", || {
        deliveries(&c, "delivered").len() == 1
    });
    let done = &deliveries(&c, "delivered")[0];
    assert_eq!(done["attempt_count"], 3);
    let statuses: Vec<&Value> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(200)]);
    assert_eq!(got.iter().filter(|r| r.answered == 200).count(), 1);
    assert!(
        got.iter()
            .all(|r| r.id == first[0].id && r.signed_by(&secret)),
        "one webhook-id across retries"
    );
}

#[test]
fn a_gone_receiver_fails_the_delivery_and_an_operator_retry_revives_it() {
    let a = FakeReceiver::start(&[410]);
    let d = InProc::start();
    let c = d.client();
    acme_with_one_order(&c, &a.url);
    eventually(Duration::from_secs(10), "the delivery to fail", || {
        deliveries(&c, "failed").len() == 1
    });
    let id = deliveries(&c, "failed")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        c.post_empty(&format!("/v1/deliveries/{id}/retry"))
            .expect(200)["status"],
        "pending"
    );
    eventually(Duration::from_secs(10), "the retry to land", || {
        deliveries(&c, "delivered").len() == 1
    });
    c.post_empty(&format!("/v1/deliveries/{id}/retry"))
        .problem(409, "already-delivered");
    assert_eq!(a.received().len(), 2);
}

#[test]
fn a_receiver_down_across_a_restart_still_gets_the_event() {
    // A port with nothing listening: the first attempt fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let d = Daemon::start();
    let c = d.client();
    let secret = acme_with_one_order(&c, &url);
    eventually(Duration::from_secs(10), "a failed attempt", || {
        deliveries(&c, "pending")
            .first()
            .is_some_and(|d| d["attempt_count"] == 1)
    });
    let mut d = d;
    assert!(d.stop().success());
    let receiver = FakeReceiver::start_on(&format!("127.0.0.1:{port}"), &[]);
    let _dir = d.take_dir();
    let d = Daemon::start_in(&d.data);
    let got = receiver.wait_for(1);
    assert_eq!(got[0].kind(), "fulfillment.created");
    assert!(got[0].signed_by(&secret));
    eventually(
        Duration::from_secs(10),
        "the delivery to be recorded",
        || deliveries(&d.client(), "delivered").len() == 1,
    );
}

/// A graceful stop lets a webhook in flight finish and records it, so the restarted
/// daemon does not send it again.
#[test]
fn a_graceful_stop_records_the_webhook_in_flight_so_it_is_not_sent_twice() {
    let acme = FakeReceiver::start(&[]);
    acme.hold_answers();
    let mut d = Daemon::start();
    let c = d.client();
    acme_with_one_order(&c, &acme.url);
    acme.wait_for(1); // Sent; its answer is held.
    let base = d.base.clone();
    let stopping = std::thread::spawn(move || {
        let stopped = d.stop();
        (d, stopped)
    });
    // Once the daemon refuses connections it is shutting down with the request
    // still in flight; only then may the answer come.
    let addr = base.trim_start_matches("http://").to_owned();
    eventually(
        Duration::from_secs(10),
        "the daemon to stop listening",
        || std::net::TcpStream::connect(&addr).is_err(),
    );
    acme.release_answers();
    let (mut d, stopped) = stopping.join().unwrap();
    assert!(stopped.success());
    let _dir = d.take_dir();
    let d = Daemon::start_in(&d.data);
    let c = d.client();
    assert_eq!(deliveries(&c, "delivered").len(), 1);
    assert!(deliveries(&c, "pending").is_empty());
    // Nothing was pending, so nothing goes out again at start-up.
    assert_eq!(acme.received().len(), 1);
}

/// Webhook-ids are remembered for 7 days: a retry within them is a no-op, and the
/// pruning that bounds the table forgets only older ones.
#[test]
fn webhook_ids_are_kept_seven_days_then_pruned() {
    let d = InProc::start();
    let c = d.client();
    let secret = add_supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 0)]);
    let send = |n: i64| {
        let items = json!({"items": [{"supplier_sku": "acme-x", "on_hand": n}]});
        d.supplier_webhook(&c, ("acme", &secret), "w-1", "stock.updated", items)
            .expect(200)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let prune = || {
        d.app
            .writer
            .write_blocking(|tx| marketd::store::webhooks::prune(tx, 100))
            .unwrap()
    };
    assert_eq!(send(1), "applied");
    d.clock.advance_ms(7 * 24 * 3600 * 1000 - 1);
    assert_eq!(prune(), 0);
    assert_eq!(send(2), "duplicate");
    assert_eq!(stock(&c, "x", None)["on_hand"], 1);
    d.clock.advance_ms(2);
    assert_eq!(prune(), 1);
    assert_eq!(send(3), "applied");
    assert_eq!(stock(&c, "x", None)["on_hand"], 3);
}

/// After a rotation the old secret is accepted for a day, then no more.
#[test]
fn a_rotated_out_secret_works_for_a_day() {
    let d = InProc::start();
    let c = d.client();
    let old = add_supplier(&c, "acme", "http://127.0.0.1:9/h", "alert");
    add_sku(&c, "x", &[("acme", 10, 0)]);
    let new = c.post_empty("/v1/suppliers/acme/rotate-secret").expect(200)["webhook_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = |secret: &str, id: &str| {
        let items = json!({"items": [{"supplier_sku": "acme-x", "on_hand": 1}]});
        d.supplier_webhook(&c, ("acme", secret), id, "stock.updated", items)
    };
    send(&old, "a").expect(200);
    send(&new, "b").expect(200);
    d.clock.advance_ms(24 * 3600 * 1000 - 1);
    send(&old, "c").expect(200);
    d.clock.advance_ms(1);
    send(&old, "d").problem(401, "unauthorized");
    send(&new, "e").expect(200);
}

/// Delivered webhooks are forgotten after seven days; failed ones stay for the
/// operator.
#[test]
fn delivered_records_are_pruned_after_seven_days_and_failed_ones_kept() {
    let (a, b) = (FakeReceiver::start(&[]), FakeReceiver::start(&[410]));
    let d = InProc::start();
    let c = d.client();
    add_supplier(&c, "acme", &a.url, "alert");
    add_supplier(&c, "bolt", &b.url, "alert");
    add_sku(&c, "x", &[("acme", 10, 5)]);
    add_sku(&c, "y", &[("bolt", 10, 5)]);
    // The failed delivery is made first, so it sorts before the delivered one.
    let web = c.with_token(Some(&web_key(&c)));
    order(&web, "k1", json!([{"sku": "y", "qty": 1}]));
    d.clock.advance_ms(1);
    order(&web, "k2", json!([{"sku": "x", "qty": 1}]));
    eventually(Duration::from_secs(10), "one delivered, one failed", || {
        deliveries(&c, "delivered").len() == 1 && deliveries(&c, "failed").len() == 1
    });
    // One record per command, each going on after the last: the failed one, kept,
    // must not stop the look at what follows it.
    let prune = || {
        let mut after = String::new();
        for _ in 0..3 {
            let next = d
                .app
                .writer
                .write_blocking(move |tx| marketd::store::outbox::prune_delivered(tx, after, 1))
                .unwrap();
            match next {
                Some(id) => after = id,
                None => return,
            }
        }
        panic!("pruning two deliveries did not finish");
    };
    d.clock.advance_ms(7 * 24 * 3600 * 1000 - 1);
    prune();
    assert_eq!(deliveries(&c, "delivered").len(), 1);
    d.clock.advance_ms(1);
    prune();
    assert!(deliveries(&c, "delivered").is_empty());
    assert_eq!(deliveries(&c, "failed").len(), 1);
    let metrics = c.with_token(None).get("/metrics").expect(200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("marketd_deliveries{status=\"failed\"} 1")
    );
}
